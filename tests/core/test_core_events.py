"""Events: wire shapes and the close code of every end reason (PROTOCOL.md)."""

from __future__ import annotations

import json

import pytest

from tether.core.events import (
    CLOSE_CODES,
    SessionActive,
    SessionConfig,
    SessionEndedEvent,
    SessionStarted,
    SessionWarning,
    TranscriptAppended,
    close_code,
)
from tether.core.policy import Policy
from tether.core.session import SessionInfo, SessionRecord
from tether.core.transcript import Message, Role
from tether.types import EndReason, SessionId, UserId

T0 = 1_700_000_000.0

PROTOCOL_CODES = {
    "client_ended": 1000,
    "server_shutdown": 1001,
    "error": 1011,
    "idle_timeout": 4001,
    "max_duration": 4002,
    "replaced": 4003,
    "admin": 4004,
    "client_gone": 1000,
}


@pytest.mark.parametrize(("reason", "code"), PROTOCOL_CODES.items())
def test_close_code_matches_protocol(reason: str, code: int) -> None:
    """close_code gives the PROTOCOL.md close code for each end reason."""
    assert close_code(EndReason(reason)) == code


def test_every_end_reason_has_a_close_code() -> None:
    """The close-code table covers exactly the EndReason vocabulary."""
    assert set(CLOSE_CODES) == set(EndReason)
    assert {r.value for r in EndReason} == set(PROTOCOL_CODES)


def test_only_shutdown_and_error_invite_a_reconnect() -> None:
    """Only server_shutdown and error map to the reconnectable codes 1001/1011."""
    reconnect = {r for r in EndReason if close_code(r) in {1001, 1006, 1011}}
    assert reconnect == {EndReason.SERVER_SHUTDOWN, EndReason.ERROR}


def test_close_codes_are_valid_websocket_codes() -> None:
    """Every close code is 1000 or in the application range 4000-4999, or 1001/1011."""
    for code in CLOSE_CODES.values():
        assert code in {1000, 1001, 1011} or 4000 <= code <= 4999


def _info() -> SessionInfo:
    record = SessionRecord(
        SessionId("ab" * 16), UserId("alice"), "chat", Policy(), T0, {"lang": "en"}
    )
    return record.snapshot()


def test_session_started_wire_shape() -> None:
    """session.started carries the session's to_dict() under 'session'."""
    info = _info()
    wire = SessionStarted(info).to_wire()
    assert wire == {"type": "session.started", "session": info.to_dict()}
    json.dumps(wire)


def test_session_config_wire_shape() -> None:
    """session.config carries the config object."""
    wire = SessionConfig({"voice": "x", "n": 2}).to_wire()
    assert wire == {"type": "session.config", "config": {"voice": "x", "n": 2}}


def test_session_warning_wire_shape() -> None:
    """session.warning carries the reason value, seconds_left and ends_at."""
    wire = SessionWarning(EndReason.IDLE_TIMEOUT, 120.0, T0 + 600).to_wire()
    assert wire == {
        "type": "session.warning",
        "reason": "idle_timeout",
        "seconds_left": 120.0,
        "ends_at": T0 + 600,
    }
    assert type(wire["reason"]) is str
    json.dumps(wire)


def test_session_active_wire_shape() -> None:
    """session.active is just its type."""
    assert SessionActive().to_wire() == {"type": "session.active"}


def test_session_ended_wire_shape_without_archive() -> None:
    """session.ended carries the reason value and no archive_id when there is none."""
    wire = SessionEndedEvent(EndReason.MAX_DURATION).to_wire()
    assert wire == {"type": "session.ended", "reason": "max_duration"}
    assert type(wire["reason"]) is str


def test_session_ended_wire_shape_with_archive() -> None:
    """session.ended includes archive_id when the transcript was archived."""
    wire = SessionEndedEvent(EndReason.CLIENT_ENDED, "arch-1").to_wire()
    assert wire == {"type": "session.ended", "reason": "client_ended", "archive_id": "arch-1"}


def test_transcript_message_wire_shape() -> None:
    """transcript.message carries the message's to_dict()."""
    msg = Message(4, Role.ASSISTANT, "hello", T0, {"model": "m"})
    wire = TranscriptAppended(msg).to_wire()
    assert wire == {"type": "transcript.message", "message": msg.to_dict()}
    json.dumps(wire)


def test_event_type_names_match_protocol() -> None:
    """Each event's type tag is the PROTOCOL.md server-to-client name."""
    assert SessionStarted.type == "session.started"
    assert SessionConfig.type == "session.config"
    assert SessionWarning.type == "session.warning"
    assert SessionActive.type == "session.active"
    assert SessionEndedEvent.type == "session.ended"
    assert TranscriptAppended.type == "transcript.message"
