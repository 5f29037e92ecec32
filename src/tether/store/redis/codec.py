"""How a session, its policy and its messages are written into Redis and read back.

A session is one hash. Numbers are written with ``repr`` so they read back
exactly (Lua only compares them, never formats them). Besides the record's own
fields the hash holds the store's: ``armed_at``, the time of the session's
entry in the deadline index (a lower bound of its next event); ``v``, a
version every write bumps, so a change decided in Python commits only if the
session did not move meanwhile; ``fence``, the fencing token of its end; and
``c:<node>``, the connections each node counts (see ``prelude.lua``).

Redis keeps a hash of few, short values listpack-encoded, about a third of
the memory of a real hash table; one value over 64 bytes converts it for
good. The only value that is often that long is the config, so a long config
is cut into pieces (``config``, ``config:1``, ...), and timeouts are written
as short as they read back exactly (``600`` for ``600.0``).
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
_encoded: dict[Policy, str] = {}
_CACHED = 4096


def _short(value: float) -> str:
    """A timeout as few characters as read back exactly: ``600`` for ``600.0``."""
    return str(int(value)) if value.is_integer() and abs(value) < 2**53 else repr(value)


def encode_policy(policy: Policy) -> str:
    """The four timeouts, comma-separated (equal policies are encoded once)."""
    text = _encoded.get(policy)
    if text is None:
        text = ",".join(
            _short(float(v))
            for v in (
                policy.idle_timeout,
                policy.warn_before,
                policy.max_duration,
                policy.presence_timeout,
            )
        )
        if len(_encoded) >= _CACHED:
            _encoded.clear()
        _encoded[policy] = text
    return text


def decode_policy(value: str) -> Policy:
    """The policy ``encode_policy`` wrote; equal policies share one object, as in memory."""
    policy = _policies.get(value)
    if policy is None:
        idle, warn, longest, presence = (float(v) for v in value.split(","))
        policy = Policy(idle, warn, longest, presence)
        if len(_policies) >= _CACHED:
            _policies.clear()
        _policies[value] = policy
    return policy


def encode_config(config: dict[str, Any] | None) -> str:
    """A config as JSON; ``""`` for none."""
    return json.dumps(config, ensure_ascii=False, separators=(",", ":")) if config else ""


PIECE = 64
"""Bytes per hash value at most: Redis keeps a hash compact (listpack-encoded,
about a third of the memory) only while every value is this short
(``hash-max-listpack-value``, default 64)."""


def pieces(value: str) -> list[str]:
    """``value`` cut into pieces of at most ``PIECE`` UTF-8 bytes each (at least one)."""
    if value.isascii():
        return [value[i : i + PIECE] for i in range(0, len(value), PIECE)] or [""]
    out: list[str] = []
    start = size = 0
    for i, char in enumerate(value):
        width = len(char.encode())
        if size + width > PIECE:
            out.append(value[start:i])
            start, size = i, 0
        size += width
    out.append(value[start:])
    return out


def config_fields(config: dict[str, Any] | None) -> list[str]:
    """The config as field, value pairs: ``config`` then ``config:1``, ``config:2``...

    A config longer than ``PIECE`` bytes is cut into pieces, so a session's
    hash stays compact whatever the size of its config (up to Redis's
    ``hash-max-listpack-entries`` fields in all).
    """
    out: list[str] = []
    for i, piece in enumerate(pieces(encode_config(config))):
        out += ("config" if i == 0 else f"config:{i}", piece)
    return out


def _config(f: Mapping[str, str]) -> dict[str, Any] | None:
    text = f["config"]
    if not text:
        return None
    i = 1
    while (piece := f.get(f"config:{i}")) is not None:
        text += piece
        i += 1
    config: dict[str, Any] = json.loads(text)
    return config


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
        *config_fields(record.config),
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
        flat = [v.decode() if isinstance(v, bytes) else v for v in fields]
        f = dict(zip(flat[::2], flat[1::2], strict=True))
    record = SessionRecord.__new__(SessionRecord)
    record.id = SessionId(f["id"])
    record.user = UserId(f["user"])
    record.kind = f["kind"]
    record.policy = decode_policy(f["policy"])
    record.config = _config(f)
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
