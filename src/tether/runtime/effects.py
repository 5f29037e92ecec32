"""The effects of a transition this node won: events to the clients, counts, hooks, ends.

The store decides each transition once (a deadline the scheduler claimed, a
touch that cleared a warning or found the end due) and hands it to one node;
:class:`Effects` applies it there.
"""

from __future__ import annotations

from tether.clock import Clock
from tether.core.events import Event, SessionActive, SessionWarning
from tether.core.session import Ended, Reactivated, SessionInfo, Warned
from tether.metrics.sink import MetricsSink
from tether.runtime.deployment import Deployment
from tether.runtime.ending import EndPipelines
from tether.runtime.hooks import Hook, Hooks
from tether.runtime.tasks import TaskSet
from tether.store.base import Claim


class Effects:
    """Applies won transitions: warnings and reactivations are sent and hooked, ends run."""

    def __init__(
        self,
        *,
        clock: Clock,
        tasks: TaskSet,
        hooks: Hooks,
        metrics: MetricsSink,
        ends: EndPipelines,
        deployment: Deployment,
    ) -> None:
        self._clock = clock
        self._tasks = tasks
        self._hooks = hooks
        self._metrics = metrics
        self._ends = ends
        self.broadcast = deployment.broadcast
        """Send an event to the session's channels here and on every other node."""

    def dispatch(self, claims: list[Claim]) -> None:
        """Apply the effects of transitions this node won."""
        for claim in claims:
            info, transition = claim.session, claim.transition
            event: Event
            if isinstance(transition, Ended):
                self._ends.start(claim)
                continue
            if isinstance(transition, Warned):
                event = self.warning_event(transition)
                self._metrics.session_warned(transition.reason)
                hooks = self._hooks.warning
            else:
                assert isinstance(transition, Reactivated)
                event = SessionActive()
                self._metrics.session_reactivated()
                hooks = self._hooks.active
            self.broadcast(info.id, event)
            self.emit(hooks, info)

    def emit(self, hooks: list[Hook], info: SessionInfo) -> None:
        """Call ``hooks`` with ``info`` in the background."""
        # No task at all when nothing listens: starts are a hot path.
        if hooks:
            self._tasks.spawn(self._hooks.emit(hooks, info), name="tether-hook")

    def warning_event(self, warned: Warned) -> SessionWarning:
        """The ``session.warning`` event for a warning in force, with the seconds left now."""
        left = max(0.0, warned.ends_at - self._clock.now())
        return SessionWarning(warned.reason, left, warned.ends_at)
