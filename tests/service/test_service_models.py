"""``tether.service.models``: the one JSON view of a session, and the views that narrow it."""

from __future__ import annotations

from tether.core.policy import Policy
from tether.core.session import SessionRecord
from tether.service.models import admin_view, deadlines, presence_view, session_view
from tether.types import EndReason, SessionId, UserId

T0 = 1_700_000_000.0
POLICY = Policy(idle_timeout=60, warn_before=10, max_duration=600, presence_timeout=30)


def _record() -> SessionRecord:
    return SessionRecord(SessionId("a" * 32), UserId("alice"), "chat", POLICY, T0, {"role": "x"})


def test_session_view_is_the_core_snapshot_with_deadlines_and_policy() -> None:
    """The view holds every field of the snapshot, plus the three deadlines and the policy."""
    info = _record().snapshot()
    view = session_view(info)
    assert {k: view[k] for k in info.to_dict()} == info.to_dict()
    assert view["deadlines"] == deadlines(info)
    assert (view["deadlines"]["idle_at"], view["deadlines"]["max_at"]) == (T0 + 60, T0 + 600)
    assert view["policy"] == {
        "idle_timeout": 60,
        "warn_before": 10,
        "max_duration": 600,
        "presence_timeout": 30,
    }
    assert "archive_id" not in view


def test_an_archived_session_carries_its_archive_id_and_no_deadlines() -> None:
    """An ended session read from its archive names the archive; its clocks no longer run."""
    record = _record()
    assert record.finish(T0 + 5, EndReason.ADMIN)
    view = session_view(record.snapshot(), archive_id="2023-11-14-22-13-20-aaaaaaaaaaaa")
    assert view["archive_id"] == "2023-11-14-22-13-20-aaaaaaaaaaaa"
    assert view["deadlines"] is None


def test_the_admin_view_is_the_session_view_without_config_and_policy() -> None:
    """The admin feed sends the same object minus the config and the policy, nothing else."""
    info = _record().snapshot()
    full, admin = session_view(info), admin_view(info)
    assert set(full) - set(admin) == {"config", "policy"}
    assert all(admin[k] == full[k] for k in admin)


def test_the_presence_view_repeats_the_session_view() -> None:
    """A heartbeat's answer repeats the session view's id, state, warning and deadlines."""
    info = _record().snapshot()
    full, presence = session_view(info), presence_view(info, 15.0)
    assert set(presence) == {
        "id",
        "state",
        "warning",
        "next_deadline",
        "deadlines",
        "heartbeat_interval_s",
    }
    assert all(presence[k] == full[k] for k in ("id", "state", "warning", "next_deadline"))
    assert presence["deadlines"] == full["deadlines"]
    assert presence["heartbeat_interval_s"] == 15.0
