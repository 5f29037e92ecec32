"""A custom MetricsSink passed to the manager receives every lifecycle fact."""

from __future__ import annotations

from tether import EndReason, Policy
from tether.testing import RecordingChannel, fake_manager

POLICY = Policy(idle_timeout=60, warn_before=10, max_duration=600, presence_timeout=30)


class ListSink:
    """Records each call as a tuple."""

    def __init__(self) -> None:
        self.facts: list[tuple[object, ...]] = []

    def session_started(self, kind: str) -> None:
        self.facts.append(("started", kind))

    def session_warned(self, reason: EndReason) -> None:
        self.facts.append(("warned", reason))

    def session_reactivated(self) -> None:
        self.facts.append(("reactivated",))

    def session_ended(self, reason: EndReason, duration: float) -> None:
        self.facts.append(("ended", reason, duration))

    def cleanup_failed(self) -> None:
        self.facts.append(("cleanup_failed",))

    def hook_failed(self) -> None:
        self.facts.append(("hook_failed",))


async def test_custom_sink_sees_start_warning_extension_failures_and_end() -> None:
    """The sink gets each fact once, alongside the built-in counters, with the duration."""
    sink = ListSink()
    async with fake_manager(policy=POLICY, metrics=sink) as kit:
        manager = kit.manager
        session = await manager.start("alice", kind="interview")
        await manager.attach(session.id, RecordingChannel())

        async def broken() -> None:
            raise RuntimeError("boom")

        def bad_hook(_: object) -> None:
            raise RuntimeError("hook")

        await manager.add_cleanup(session.id, broken)
        manager.on_warning(bad_hook)
        await kit.advance(50)
        await manager.activity(session.id)
        await kit.advance(60)
        await manager.wait_idle()
        assert sink.facts == [
            ("started", "interview"),
            ("warned", EndReason.IDLE_TIMEOUT),
            ("hook_failed",),
            ("reactivated",),
            ("warned", EndReason.IDLE_TIMEOUT),
            ("hook_failed",),
            ("cleanup_failed",),
            ("ended", EndReason.IDLE_TIMEOUT, 110.0),
        ]
        built_in = await manager.metrics()
        assert (built_in.warnings, built_in.hook_failures, built_in.cleanup_failures) == (2, 2, 1)
