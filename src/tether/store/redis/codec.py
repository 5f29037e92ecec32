"""How a session, its policy and its messages are written into Redis and read back.

A session is one hash. Numbers are written with ``repr`` so they read back
exactly (Lua only compares them, never formats them). Besides the record's own
fields the hash holds the store's: ``armed_at``, the time of the session's
entry in the deadline index (a lower bound of its next event); ``v``, a
version every write bumps, so a change decided in Python commits only if the
session did not move meanwhile; ``fence``, the fencing token of its end; and
``c:<node>``, the connections each node counts (see ``prelude.lua``).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, NamedTuple

from tether.core.policy import Policy
from tether.core.session import SessionRecord
from tether.core.transcript import Message, Role
from tether.types import EndReason, SessionId, SessionState, UserId

Raw = bytes | str
"""What the client returns for a string: bytes, or str with ``decode_responses``."""


class Loaded(NamedTuple):
    """A session read from its hash, with the store's bookkeeping."""

    record: SessionRecord
    version: str
    armed_at: float
    fence: int = 0
    counts: dict[str, int] = {}  # noqa: RUF012 (never mutated: decode builds a new one)
    """Connections counted per node token."""

    @property
    def holders(self) -> tuple[str, ...]:
        """The nodes counting connections to the session, sorted."""
        return tuple(sorted(node for node, n in self.counts.items() if n > 0))


def text(value: Raw) -> str:
    """``value`` as a str, whichever way the client decodes replies."""
    return value.decode() if isinstance(value, bytes) else value


def num(value: float) -> str:
    """A float as Redis should store it: ``repr`` reads back exactly."""
    return repr(float(value))


_policies: dict[str, Policy] = {}


def encode_policy(policy: Policy) -> str:
    """The four timeouts, comma-separated."""
    return ",".join(
        num(v)
        for v in (
            policy.idle_timeout,
            policy.warn_before,
            policy.max_duration,
            policy.presence_timeout,
        )
    )


def decode_policy(value: str) -> Policy:
    """The policy ``encode_policy`` wrote; equal policies share one object, as in memory."""
    policy = _policies.get(value)
    if policy is None:
        idle, warn, longest, presence = (float(v) for v in value.split(","))
        policy = Policy(idle, warn, longest, presence)
        if len(_policies) >= 4096:
            _policies.clear()
        _policies[value] = policy
    return policy


def encode_config(config: dict[str, Any] | None) -> str:
    """A config as JSON; ``""`` for none."""
    return json.dumps(config, ensure_ascii=False, separators=(",", ":")) if config else ""


def _optional(value: float | None) -> str:
    return "" if value is None else num(value)


def mutable_fields(record: SessionRecord) -> list[str]:
    """The fields a change decided in Python may set, as ``field, value`` pairs."""
    return [
        "last_activity",
        num(record.last_activity),
        "last_seen",
        num(record.last_seen),
        "connections",
        str(record.connections),
        "ever_attached",
        "1" if record.ever_attached else "0",
        "state",
        record.state.value,
        "warning_reason",
        "" if record.warning_reason is None else record.warning_reason.value,
        "ended_at",
        _optional(record.ended_at),
        "end_reason",
        "" if record.end_reason is None else record.end_reason.value,
        "policy",
        encode_policy(record.policy),
    ]


def new_fields(record: SessionRecord, armed_at: float) -> list[str]:
    """Every field of a new session's hash, as ``field, value`` pairs."""
    return [
        "id",
        record.id,
        "user",
        record.user,
        "kind",
        record.kind,
        "config",
        encode_config(record.config),
        "created_at",
        num(record.created_at),
        "message_count",
        str(record.message_count),
        "armed_at",
        num(armed_at),
        "v",
        "1",
        *mutable_fields(record),
    ]


def decode(fields: list[Raw] | Mapping[Raw, Raw]) -> Loaded:
    """A session from its hash, as a script (a flat list) or ``HGETALL`` (a dict) returns it."""
    if isinstance(fields, Mapping):
        f = {text(k): text(v) for k, v in fields.items()}
    else:
        it = iter(fields)
        f = {text(k): text(v) for k, v in zip(it, it, strict=True)}
    record = SessionRecord.__new__(SessionRecord)
    record.id = SessionId(f["id"])
    record.user = UserId(f["user"])
    record.kind = f["kind"]
    record.policy = decode_policy(f["policy"])
    record.config = json.loads(f["config"]) if f["config"] else None
    record.created_at = float(f["created_at"])
    record.last_activity = float(f["last_activity"])
    record.last_seen = float(f["last_seen"])
    record.connections = int(f["connections"])
    record.ever_attached = f["ever_attached"] == "1"
    record.state = SessionState(f["state"])
    record.warning_reason = EndReason(f["warning_reason"]) if f["warning_reason"] else None
    record.ended_at = float(f["ended_at"]) if f["ended_at"] else None
    record.end_reason = EndReason(f["end_reason"]) if f["end_reason"] else None
    record.message_count = int(f["message_count"])
    counts = {k[2:]: int(v) for k, v in f.items() if k.startswith("c:")}
    return Loaded(record, f["v"], float(f["armed_at"]), int(f.get("fence", "0")), counts)


def encode_message(role: Role, content: str, ts: float, metadata: dict[str, Any] | None) -> str:
    """One transcript entry (its seq is its position in the list)."""
    return json.dumps([role.value, content, ts, metadata or None], ensure_ascii=False)


def decode_message(seq: int, value: Raw) -> Message:
    """The message ``encode_message`` wrote, numbered ``seq``."""
    role, content, ts, metadata = json.loads(value)
    return Message(seq, Role(role), content, ts, metadata or None)
