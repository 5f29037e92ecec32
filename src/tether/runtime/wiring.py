"""Builds a :class:`~tether.runtime.manager.SessionManager`'s parts, once, in dependency order.

Everything the manager holds is made here, and nothing is linked afterwards:

* the deployment (:mod:`tether.runtime.deployment`) is chosen once from the
  store: a node on its own, or one of several on a shared store;
* every store call of a command goes through one
  :class:`~tether.runtime.gateway.StoreGateway`;
* the transcript's journal policy (:mod:`tether.runtime.transcripts`) is
  chosen once from the ``journal`` option.

Two links run the other way and are handed over when the manager opens, not
at construction (like a bus's listener): the scheduler gets the
:class:`~tether.runtime.effects.Effects` that apply what it claims, and a
shared node gets the end pipelines that end the sessions a store lost.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from tether.archive.base import Archiver
from tether.archive.journal import FileJournal
from tether.clock import Clock, SystemClock
from tether.core.policy import Policy
from tether.errors import ConfigError, InvalidInput
from tether.metrics.counters import SessionCounters
from tether.metrics.sink import MetricsSink, Tee
from tether.runtime.bus import EventBus, LocalBus
from tether.runtime.busy import SetBusy
from tether.runtime.channel import Channel
from tether.runtime.cleanup import CleanupRegistry
from tether.runtime.deployment import Deployment, SharedNode, SingleNode
from tether.runtime.effects import Effects
from tether.runtime.ending import EndPipelines
from tether.runtime.fanout import Fanout
from tether.runtime.gateway import StoreGateway
from tether.runtime.hooks import Hooks
from tether.runtime.leases import EndLeases
from tether.runtime.outage import OutageGuard
from tether.runtime.pipelines import Running
from tether.runtime.replies import BARGE_IN_POLICIES, Append, Lookup, Replies
from tether.runtime.scheduler import DeadlineScheduler
from tether.runtime.session_tasks import SessionTasks
from tether.runtime.store_bus import bus_for
from tether.runtime.tasks import TaskSet
from tether.runtime.transcripts import Journaled, Unjournaled
from tether.store.base import SessionStore
from tether.store.memory import MemoryStore
from tether.types import EndReason, SessionId

SHARED_POLL_INTERVAL = 5.0
"""On a shared store, the scheduler looks at the deadline index at least this often."""
EPOCH_INTERVAL = 5.0
"""On a shared store, how often the store's epoch is checked unless told otherwise."""


@dataclass(frozen=True, slots=True)
class Options:
    """The manager's options, as ``SessionManager(...)`` takes them (see its docstring)."""

    policy: Policy | None = None
    clock: Clock | None = None
    max_sessions_per_user: int | None = 5
    cleanup_timeout: float = 10.0
    close_timeout: float = 5.0
    claim_batch: int = 1000
    max_concurrent_ends: int = 256
    metrics: MetricsSink | None = None
    journal: FileJournal | None = None
    archiver: Archiver | None = None
    bus: EventBus | None = None
    ack_timeout: float | None = None
    poll_interval: float | None = None
    epoch_interval: float | None = None
    barge_in: str = "cancel"
    max_session_tasks: int = 64


@dataclass(frozen=True, slots=True)
class Parts:
    """What a manager is made of."""

    store: SessionStore
    policy: Policy
    clock: Clock
    counters: SessionCounters
    metrics: MetricsSink
    tasks: TaskSet
    fanout: Fanout
    cleanups: CleanupRegistry
    hooks: Hooks
    gateway: StoreGateway
    scheduler: DeadlineScheduler
    leases: EndLeases
    deployment: Deployment
    ends: EndPipelines
    effects: Effects
    transcripts: Unjournaled
    session_tasks: SessionTasks
    replies: Replies


def check(store: SessionStore | None, options: Options) -> None:
    """Refuse options that cannot work together, before anything is built."""
    limit = options.max_sessions_per_user
    if limit is not None and limit < 1:
        raise InvalidInput("max_sessions_per_user must be at least 1 (or None for no limit)")
    if options.barge_in not in BARGE_IN_POLICIES:
        raise ConfigError(f"barge_in must be one of {', '.join(BARGE_IN_POLICIES)}")
    if options.max_session_tasks < 1:
        raise InvalidInput("max_session_tasks must be at least 1")
    if options.journal is not None and options.archiver is None:
        # A journal is only ever removed once its archive is durable, so
        # without an archiver every journal would stay forever.
        raise ConfigError("a journal needs an archiver to hand ended sessions to")
    if options.journal is not None and store is not None and store.shared:
        # On a shared store the transcript is durable in the store, and a
        # node's journal sees only the messages appended through it, while
        # its start-up recovery would archive sessions still live elsewhere.
        raise ConfigError(
            "a journal is per node: on a shared store (Redis) pass journal=None, "
            "the store keeps the transcript"
        )


# Long: the one place the parts meet; each step is a constructor call, in dependency order.
def build(
    store: SessionStore | None,
    options: Options,
    *,
    on_drop: Callable[[SessionId, Channel], object],
    append: Append,
    lookup: Lookup,
    set_busy: SetBusy,
) -> Parts:
    """Check the options and build every part.

    ``on_drop``: a slow channel was dropped; ``append``, ``lookup`` and
    ``set_busy``: the manager's, for the replies to store themselves, check
    their session and keep it busy while they stream.
    """
    check(store, options)
    store = store if store is not None else MemoryStore()
    clock: Clock = options.clock if options.clock is not None else SystemClock()
    counters = SessionCounters()
    metrics: MetricsSink = counters if options.metrics is None else Tee(counters, options.metrics)
    tasks = TaskSet()
    fanout = Fanout(tasks, clock, on_drop=on_drop, close_timeout=options.close_timeout)
    session_tasks = SessionTasks(
        clock, limit=options.max_session_tasks, timeout=options.cleanup_timeout
    )

    def broadcast(session_id: SessionId, event: Any) -> None:
        deployment.broadcast(session_id, event)  # bound below, before any reply can open

    replies = Replies(
        append=append,
        broadcast=broadcast,
        lookup=lookup,
        set_busy=set_busy,
        barge_in=options.barge_in,
    )

    async def stop_work(session_id: SessionId, reason: EndReason = EndReason.ERROR) -> None:
        await session_tasks.cancel(session_id, reason)
        await replies.cut_all(session_id)

    cleanups = CleanupRegistry(
        clock,
        timeout=options.cleanup_timeout,
        on_failure=metrics.cleanup_failed,
        before_run=stop_work,
    )
    hooks = Hooks(metrics.hook_failed)
    outage = OutageGuard(store, clock)
    scheduler = DeadlineScheduler(
        store,
        clock,
        batch=options.claim_batch,
        max_sleep=(options.poll_interval or SHARED_POLL_INTERVAL) if store.shared else None,
        outage=outage,
    )
    gateway = StoreGateway(store, clock, outage, scheduler.poke)
    running: Running = {}
    deployment = _deployment(gateway, options, clock, fanout, cleanups, tasks, running)
    leases = EndLeases(store, clock, renew=store.shared)
    ends = EndPipelines(
        store=store,
        clock=clock,
        tasks=tasks,
        fanout=fanout,
        cleanups=cleanups,
        hooks=hooks,
        metrics=metrics,
        leases=leases,
        archiver=options.archiver,
        journal=options.journal,
        limit=options.max_concurrent_ends,
        announcer=deployment.announcer,
        running=running,
        stop_work=stop_work,
    )
    effects = Effects(
        clock=clock, tasks=tasks, hooks=hooks, metrics=metrics, ends=ends, deployment=deployment
    )
    transcripts = (
        Unjournaled()
        if options.journal is None
        else Journaled(options.journal, store=gateway, ends=ends, metrics=metrics, clock=clock)
    )
    policy = options.policy if options.policy is not None else Policy()
    return Parts(
        store, policy, clock, counters, metrics, tasks, fanout, cleanups, hooks, gateway,
        scheduler, leases, deployment, ends, effects, transcripts, session_tasks, replies,
    )  # fmt: skip


def _deployment(
    gateway: StoreGateway,
    options: Options,
    clock: Clock,
    fanout: Fanout,
    cleanups: CleanupRegistry,
    tasks: TaskSet,
    running: Running,
) -> Deployment:
    """The deployment the store implies: a node of several on a shared store, else alone."""
    store = gateway.store
    ack_timeout = options.ack_timeout
    if not store.shared:
        return SingleNode(options.bus if options.bus is not None else LocalBus(), fanout)
    return SharedNode(
        store=gateway,
        bus=options.bus if options.bus is not None else bus_for(store),
        clock=clock,
        fanout=fanout,
        cleanups=cleanups,
        tasks=tasks,
        ends_here=running,
        epoch_interval=options.epoch_interval or EPOCH_INTERVAL,
        ack_timeout=ack_timeout if ack_timeout is not None else 2 * options.close_timeout + 1,
    )
