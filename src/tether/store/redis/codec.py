"""How a session, its policy and its messages are written into Redis and read back.

A session is one hash, its key ``<prefix>s:<id>`` (the id is not repeated
inside). Field names are one character, because Redis stores every name in
every hash: long names cost a live session more than a hundred bytes. Each
name is defined once here (:class:`Field`) and once for the Lua scripts (the
``F`` table in ``prelude.lua``); what each field holds:

=====  ==================  =====================================================
name   record field        value
=====  ==================  =====================================================
``u``  ``user``            the user id
``k``  ``kind``            the kind
``j``  ``config``          the config as JSON (``""`` for none); a long one is
                           cut into pieces ``j``, ``j1``, ``j2``... (see below)
``t``  ``created_at``      time
``m``  ``message_count``   integer: messages appended (retracted ones included)
``l``  ``last_activity``   time
``p``  ``last_seen``       time: the last sign of a client (presence)
``c``  ``connections``     integer: the sum of the ``c:<node>`` counts
``h``  ``ever_attached``   ``1`` or ``0``
``s``  ``state``           ``active``, ``warning`` or ``ended``
``w``  ``warning_reason``  the warning's reason; absent when not warned
``e``  ``ended_at``        time; absent while live
``r``  ``end_reason``      the end's reason; absent while live
``o``  ``policy``          the four timeouts (``encode_policy``)
=====  ==================  =====================================================

Besides the record's own fields the hash holds the store's: ``a``, the time
of the session's entry in the deadline index (a lower bound of its next
event); ``v``, a version every write bumps, so a change decided in Python
commits only if the session did not move meanwhile; ``f``, the fencing token
of its end (absent until it ends); and ``c:<node>``, the connections each
node counts (see ``prelude.lua``). An optional field that is empty is not
stored at all: writing ``""`` to one deletes it (``apply.lua``).

Times are written with ``repr`` so they read back exactly (Lua only compares
them, never formats them). Redis keeps a hash of few, short values
listpack-encoded, about a third of the memory of a real hash table; one value
over 64 bytes converts it for good. The only value that is often that long is
the config, so a long config is cut into pieces, and timeouts are written as
short as they read back exactly (``600`` for ``600.0``).

Hashes written by earlier development versions (long field names, an ``id``
field) cannot be read: see ``docs/operations.md``.
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


class Field:
    """The session hash's field names (the table above; ``F`` in ``prelude.lua``)."""

    USER = "u"
    KIND = "k"
    CONFIG = "j"
    CREATED_AT = "t"
    MESSAGE_COUNT = "m"
    ARMED_AT = "a"
    VERSION = "v"
    LAST_ACTIVITY = "l"
    LAST_SEEN = "p"
    CONNECTIONS = "c"
    EVER_ATTACHED = "h"
    STATE = "s"
    WARNING_REASON = "w"
    ENDED_AT = "e"
    END_REASON = "r"
    POLICY = "o"
    FENCE = "f"
    NODE_COUNT = "c:"
    """Prefix of ``c:<node>``: the connections that node counts."""


_OPTIONAL = frozenset((Field.WARNING_REASON, Field.ENDED_AT, Field.END_REASON))
"""Fields absent while empty (``new_fields`` leaves them out, ``apply.lua`` deletes them)."""


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


def config_piece(i: int) -> str:
    """The field of the config's ``i``-th piece: ``j``, then ``j1``, ``j2``..."""
    return Field.CONFIG if i == 0 else f"{Field.CONFIG}{i}"


def config_fields(config: dict[str, Any] | None) -> list[str]:
    """The config as field, value pairs: ``j`` then ``j1``, ``j2``...

    A config longer than ``PIECE`` bytes is cut into pieces, so a session's
    hash stays compact whatever the size of its config (up to Redis's
    ``hash-max-listpack-entries`` fields in all).
    """
    out: list[str] = []
    for i, piece in enumerate(pieces(encode_config(config))):
        out += (config_piece(i), piece)
    return out


def _config(f: Mapping[str, str]) -> dict[str, Any] | None:
    text = f[Field.CONFIG]
    if not text:
        return None
    i = 1
    while (piece := f.get(config_piece(i))) is not None:
        text += piece
        i += 1
    config: dict[str, Any] = json.loads(text)
    return config


def _optional(value: float | None) -> str:
    return "" if value is None else num(value)


def mutable_fields(record: SessionRecord) -> list[str]:
    """The fields a change decided in Python may set, as ``field, value`` pairs.

    An optional field that is empty (no warning, not ended) has the value
    ``""``: ``apply.lua`` deletes it rather than store it.
    """
    return [
        Field.LAST_ACTIVITY,
        num(record.last_activity),
        Field.LAST_SEEN,
        num(record.last_seen),
        Field.CONNECTIONS,
        str(record.connections),
        Field.EVER_ATTACHED,
        "1" if record.ever_attached else "0",
        Field.STATE,
        record.state.value,
        Field.WARNING_REASON,
        "" if record.warning_reason is None else record.warning_reason.value,
        Field.ENDED_AT,
        _optional(record.ended_at),
        Field.END_REASON,
        "" if record.end_reason is None else record.end_reason.value,
        Field.POLICY,
        encode_policy(record.policy),
    ]


def new_fields(record: SessionRecord, armed_at: float) -> list[str]:
    """A new session's hash, as ``field, value`` pairs (empty optional fields left out)."""
    mutable = mutable_fields(record)
    return [
        Field.USER,
        record.user,
        Field.KIND,
        record.kind,
        *config_fields(record.config),
        Field.CREATED_AT,
        num(record.created_at),
        Field.MESSAGE_COUNT,
        str(record.message_count),
        Field.ARMED_AT,
        num(armed_at),
        Field.VERSION,
        "1",
        *(
            item
            for i in range(0, len(mutable), 2)
            if mutable[i + 1] or mutable[i] not in _OPTIONAL
            for item in mutable[i : i + 2]
        ),
    ]


def decode(session_id: str, fields: list[Raw] | Mapping[Raw, Raw]) -> Loaded:
    """Session ``session_id`` from its hash: a flat list (from a script) or a dict (``HGETALL``)."""
    if isinstance(fields, Mapping):
        f = {text(k): text(v) for k, v in fields.items()}
    else:
        flat = [v.decode() if isinstance(v, bytes) else v for v in fields]
        f = dict(zip(flat[::2], flat[1::2], strict=True))
    warning_reason = f.get(Field.WARNING_REASON)
    ended_at = f.get(Field.ENDED_AT)
    end_reason = f.get(Field.END_REASON)
    record = SessionRecord.__new__(SessionRecord)
    record.id = SessionId(session_id)
    record.user = UserId(f[Field.USER])
    record.kind = f[Field.KIND]
    record.policy = decode_policy(f[Field.POLICY])
    record.config = _config(f)
    record.created_at = float(f[Field.CREATED_AT])
    record.last_activity = float(f[Field.LAST_ACTIVITY])
    record.last_seen = float(f[Field.LAST_SEEN])
    record.connections = int(f[Field.CONNECTIONS])
    record.ever_attached = f[Field.EVER_ATTACHED] == "1"
    record.state = SessionState(f[Field.STATE])
    record.warning_reason = EndReason(warning_reason) if warning_reason else None
    record.ended_at = float(ended_at) if ended_at else None
    record.end_reason = EndReason(end_reason) if end_reason else None
    record.message_count = int(f[Field.MESSAGE_COUNT])
    prefix, skip = Field.NODE_COUNT, len(Field.NODE_COUNT)
    counts = {k[skip:]: int(v) for k, v in f.items() if k.startswith(prefix)}
    return Loaded(
        record,
        f[Field.VERSION],
        float(f[Field.ARMED_AT]),
        int(f.get(Field.FENCE, "0")),
        counts,
    )


def encode_message(role: Role, content: str, ts: float, metadata: dict[str, Any] | None) -> str:
    """One transcript entry (its seq is its position in the list)."""
    return json.dumps([role.value, content, ts, metadata or None], ensure_ascii=False)


def decode_message(seq: int, value: Raw) -> Message:
    """The message ``encode_message`` wrote, numbered ``seq``."""
    role, content, ts, metadata = json.loads(value)
    return Message(seq, Role(role), content, ts, metadata or None)
