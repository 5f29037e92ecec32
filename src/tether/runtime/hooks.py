"""Hooks: application callbacks for the lifecycle (started ... ended), messages and configs.

:class:`Hooks` holds them; :class:`HookRegistration` is the part of
:class:`~tether.runtime.manager.SessionManager` that registers them.
``message`` and ``config`` hooks run as session-owned tasks (see
:mod:`tether.runtime.session_tasks`): an end cancels them before the archive.
``ending`` hooks run after that, still before the archive and ``session.ended``.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from tether.core.session import SessionInfo
from tether.core.transcript import Message
from tether.types import SessionId

log = logging.getLogger("tether.runtime")

Hook = Callable[[SessionInfo], Awaitable[object] | object]
H = TypeVar("H", bound=Hook)
ChangeHook = Callable[[SessionId], object]
C = TypeVar("C", bound=ChangeHook)
MessageHook = Callable[[SessionInfo, Message], Awaitable[object]]
M = TypeVar("M", bound=MessageHook)
ConfigHook = Callable[[SessionInfo, dict[str, Any]], Awaitable[object]]
F = TypeVar("F", bound=ConfigHook)


class Hooks:
    """Registered callbacks; each receives the session's snapshot.

    A hook may be a plain function or a coroutine function. One that raises
    is logged and counted; it never disturbs the session or other hooks.

    ``changed`` hooks are different: they receive only the session's id and
    are called inline, on paths as hot as user activity, so each must be a
    quick plain function (read the session later if it needs it).
    """

    def __init__(self, on_failure: Callable[[], None]) -> None:
        self._on_failure = on_failure
        self.started: list[Hook] = []
        self.warning: list[Hook] = []
        self.active: list[Hook] = []
        self.ending: list[Hook] = []
        self.ended: list[Hook] = []
        self.changed: list[ChangeHook] = []
        self.message: list[MessageHook] = []
        self.early_message: list[MessageHook] = []
        self.config: list[ConfigHook] = []

    def failed(self, hook: object) -> None:
        """Log and count a hook that raised."""
        self._on_failure()
        log.exception("hook %s failed", getattr(hook, "__qualname__", hook))

    def session_changed(self, session_id: SessionId) -> None:
        """Call every ``changed`` hook with ``session_id``, inline, in registration order."""
        for hook in self.changed:
            try:
                hook(session_id)
            except Exception:
                self._on_failure()
                log.exception("hook %s failed", getattr(hook, "__qualname__", hook))

    async def emit(self, hooks: list[Hook], info: SessionInfo) -> None:
        """Call every hook in ``hooks`` with ``info``, in registration order."""
        for hook in list(hooks):
            try:
                result = hook(info)
                if inspect.isawaitable(result):
                    await result
            except Exception:
                self._on_failure()
                log.exception("hook %s failed", getattr(hook, "__qualname__", hook))


class HookRegistration:
    """The hook-registering methods of the session manager (each usable as a decorator)."""

    _hooks: Hooks

    def on_started(self, hook: H) -> H:
        """Register ``hook(session)`` for every start; usable as a decorator."""
        self._hooks.started.append(hook)
        return hook

    def on_warning(self, hook: H) -> H:
        """Register ``hook(session)`` for every warning (``session.warning`` says which)."""
        self._hooks.warning.append(hook)
        return hook

    def on_active(self, hook: H) -> H:
        """Register ``hook(session)`` for every warning cleared by activity."""
        self._hooks.active.append(hook)
        return hook

    def on_ending(self, hook: H) -> H:
        """Register ``hook(session)`` for each end, before the archive and ``session.ended``.

        It runs once the session's own tasks and replies have stopped; what it
        sends (:meth:`~tether.runtime.manager.SessionManager.send_event`)
        reaches every connection before ``session.ended``, while they are
        still open. The end waits for it: keep it quick. Called on the node
        that runs the end's pipeline, at least once (see :meth:`on_ended`).
        """
        self._hooks.ending.append(hook)
        return hook

    def on_ended(self, hook: H) -> H:
        """Register ``hook(session)`` after each end pipeline (``session.end_reason`` says why).

        At least once, not exactly once: if the node running an end's pipeline
        dies after its hooks ran but before the end was completed in the
        store, the node that takes the end over (after the end lease) runs the
        pipeline again, hooks included. Make ended hooks idempotent, keyed on
        ``session.id``. (Retries of a failed archive do not run them again.)
        """
        self._hooks.ended.append(hook)
        return hook

    def on_changed(self, hook: C) -> C:
        """Register ``hook(session_id)`` for what the other hooks do not report.

        A message appended, user activity, a connection attached or released,
        a new config. Called inline with the id only: keep it quick, and not a
        coroutine function (see :class:`~tether.runtime.hooks.Hooks`).
        """
        self._hooks.changed.append(hook)
        return hook

    def on_message(self, hook: M, *, early: bool = False) -> M:
        """Register ``async hook(session, message)`` for every ``user`` message.

        From every transport (WebSocket ``message``, REST, the Python API),
        once the message is durable. Each call runs as a task the session
        owns: an end cancels it (before the archive), and a barge-in cuts
        the reply it streams. Coroutine functions only.

        ``early=True`` runs the hook as soon as the message is in the
        session's transcript, while the journal is still making it durable,
        for a hook whose first step is slow and invisible (a request to a
        model: its time to the first token then overlaps the disk flush).
        A reply opened then holds its pieces until the message is durable,
        so no answer reaches a client before the message it answers is
        saved, and it says nothing at all if the disk refuses the message
        (which ends the session, cancelling the hook). App events are not
        held: send those from a plain hook. Register it with
        ``manager.on_message(hook, early=True)``.
        """
        (self._hooks.early_message if early else self._hooks.message).append(hook)
        return hook

    def on_config(self, hook: F) -> F:
        """Register ``async hook(session, config)`` for every stored config change.

        From REST ``PUT .../config``, WebSocket ``config`` and
        :meth:`update_config`; runs as a session-owned task, like
        :meth:`on_message`.
        """
        self._hooks.config.append(hook)
        return hook
