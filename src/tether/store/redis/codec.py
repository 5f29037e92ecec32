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
``j``  ``config``          the config as JSON (``""`` for none), when short; a
                           live session's long one is interned (``g``), an
                           ended session's is cut into ``j``, ``j1``, ``j2``...
``g``  ``config``          a live session's long config: the reference of its
                           interned JSON (see below); absent otherwise
``t``  ``created_at``      time
``m``  ``message_count``   integer: messages appended (retracted ones included)
``l``  ``last_activity``   time
``p``  ``last_seen``       time: the last sign of a client (presence)
``c``  ``connections``     integer: the sum of the ``c:<node>`` counts
``h``  ``ever_attached``   ``1`` or ``0``
``y``  ``ever_heartbeat``  ``1``; absent until the first heartbeat
``s``  ``state``           ``active``, ``warning`` or ``ended``
``w``  ``warning_reason``  the warning's reason; absent when not warned
``e``  ``ended_at``        time; absent while live
``r``  ``end_reason``      the end's reason; absent while live
``o``  ``policy``          the four timeouts (``encode_policy``)
``i``  ``busy``            integer: open busy marks; absent while none
=====  ==================  =====================================================

Besides the record's own fields the hash holds the store's: ``a``, the time
of the session's entry in the deadline index (a lower bound of its next
event); ``v``, a version every write bumps, so a change decided in Python
commits only if the session did not move meanwhile; ``f``, the fencing token
of its end (absent until it ends); ``b``, the transcript's size in bytes
(the sum of :func:`tether.core.caps.message_size`, absent until the first
append); and ``c:<node>``, the connections each
node counts (see ``prelude.lua``). An optional field that is empty is not
stored at all: writing ``""`` to one deletes it (``apply.lua``).

Times (``t``, ``l``, ``p``, ``e``, ``a``, and every time a script receives or
scores a zset with) are whole microseconds since the epoch (:func:`num`),
written as an integer: Redis keeps an integer-looking hash value as a 64-bit
integer (about 10 bytes where a ``repr`` of the float took 20), and such an
integer (16 digits today, below 2**53) is exact as a Lua number too, so the
scripts' ``tonumber`` comparisons are exact. Lua only compares and copies
times, never formats one (it would print 14 digits). A time reads back
rounded to the microsecond (:func:`time_of`); times with no more than six
decimals read back exactly.

Redis keeps a hash of few, short values listpack-encoded, about a third of the
memory of a real hash table; one value over 64 bytes converts it for good. The
only value that is often that long is the config (below), and timeouts are
written as short as they read back exactly (``600`` for ``600.0``).

A config whose JSON is over ``PIECE`` bytes is *interned*: stored once, under
``<prefix>cfg:<ref>`` (``ref`` a digest of the JSON, :func:`config_ref`), for
every live session that has it; the session's hash holds ``g``, the
reference, where a short config is ``j``. The interned value is a hash: the
JSON in pieces of at most ``PIECE`` bytes (``j``, ``j1``, ``j2``..., so it
stays compact too) and ``n``, how many live sessions refer to it; the last
one to drop its reference deletes it (``prelude.lua``). An ending session
copies the pieces into its own hash (ended hashes are retained, which the
count does not cover). An interned value never changes (its key names its
content), so readers cache it (:func:`decode` takes the cache and raises
:class:`Unresolved` for a reference it lacks).

Hashes written by earlier development versions (long field names, an ``id``
field, times as floats) cannot be read: see ``docs/operations.md``.
"""

from __future__ import annotations

import base64
import hashlib
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
    EVER_HEARTBEAT = "y"
    STATE = "s"
    WARNING_REASON = "w"
    ENDED_AT = "e"
    END_REASON = "r"
    POLICY = "o"
    FENCE = "f"
    CONFIG_REF = "g"
    TRANSCRIPT_BYTES = "b"
    BUSY = "i"
    NODE_COUNT = "c:"
    """Prefix of ``c:<node>``: the connections that node counts."""


_OPTIONAL = frozenset(
    (Field.EVER_HEARTBEAT, Field.WARNING_REASON, Field.ENDED_AT, Field.END_REASON, Field.BUSY)
)
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


MICROS = 1_000_000
"""Time units per second as Redis stores times."""


def micros(value: float) -> int:
    """A time (epoch seconds) in whole microseconds, the unit Redis stores."""
    return round(value * MICROS)


def num(value: float) -> str:
    """A time (epoch seconds) as Redis stores it: whole microseconds, as an integer."""
    return str(round(value * MICROS))


def time_of(value: Raw) -> float:
    """The epoch seconds of a time :func:`num` wrote (or Redis formatted as a zset score)."""
    return float(value) / MICROS


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


def config_ref(value: str) -> str:
    """The reference of an interned config's JSON: 16 characters of its SHA-256.

    96 bits: equal configs share a value; distinct ones never meet by chance.
    """
    digest = hashlib.sha256(value.encode()).digest()[:12]
    return base64.urlsafe_b64encode(digest).decode()


def config_args(config: dict[str, Any] | None) -> tuple[str, list[str], list[str]]:
    """How ``create.lua`` and ``config.lua`` take a config: ``(ref, interned, fields)``.

    A config of up to ``PIECE`` bytes is stored inline: ``("", [], ["j", json])``.
    A longer one is interned: its reference, the interned hash's pieces as
    field, value pairs (``j``, ``j1``...), and ``["g", ref]`` for the session's hash.
    """
    value = encode_config(config)
    if len(value.encode()) <= PIECE:
        return "", [], [Field.CONFIG, value]
    ref = config_ref(value)
    interned: list[str] = []
    for i, piece in enumerate(pieces(value)):
        interned += (config_piece(i), piece)
    return ref, interned, [Field.CONFIG_REF, ref]


def config_text(f: Mapping[str, str]) -> str | None:
    """The config JSON held inline in hash fields ``f`` (pieces joined), if any."""
    text = f.get(Field.CONFIG)
    if text is None:
        return None
    i = 1
    while (piece := f.get(config_piece(i))) is not None:
        text += piece
        i += 1
    return text


class Unresolved(Exception):
    """A session refers to an interned config the reader has not cached."""

    def __init__(self, ref: str) -> None:
        super().__init__(ref)
        self.ref = ref


def _config(f: Mapping[str, str], configs: Mapping[str, str]) -> dict[str, Any] | None:
    ref = f.get(Field.CONFIG_REF)
    if ref is not None:
        text = configs.get(ref)
        if text is None:
            raise Unresolved(ref)
    else:
        text = config_text(f) or ""
    if not text:
        return None
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
        Field.EVER_HEARTBEAT,
        "1" if record.ever_heartbeat else "",
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
        Field.BUSY,
        str(record.busy) if record.busy else "",
    ]


def new_fields(record: SessionRecord, armed_at: float, config: list[str]) -> list[str]:
    """A new session's hash, as ``field, value`` pairs (empty optional fields left out).

    ``config`` is the config's pair, from :func:`config_args`.
    """
    mutable = mutable_fields(record)
    return [
        Field.USER,
        record.user,
        Field.KIND,
        record.kind,
        *config,
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


_NO_CONFIGS: Mapping[str, str] = {}


def fields_of(fields: list[Raw] | Mapping[Raw, Raw]) -> dict[str, str]:
    """A hash's fields from a flat list (from a script) or a dict (``HGETALL``)."""
    if isinstance(fields, Mapping):
        return {text(k): text(v) for k, v in fields.items()}
    flat = [v.decode() if isinstance(v, bytes) else v for v in fields]
    return dict(zip(flat[::2], flat[1::2], strict=True))


def decode(
    session_id: str,
    fields: list[Raw] | Mapping[Raw, Raw],
    configs: Mapping[str, str] = _NO_CONFIGS,
) -> Loaded:
    """Session ``session_id`` from its hash: a flat list (from a script) or a dict (``HGETALL``).

    ``configs`` maps the references of interned configs to their JSON; a
    reference it lacks raises :class:`Unresolved` (fetch it, then decode again).
    """
    f = fields_of(fields)
    warning_reason = f.get(Field.WARNING_REASON)
    ended_at = f.get(Field.ENDED_AT)
    end_reason = f.get(Field.END_REASON)
    record = SessionRecord.__new__(SessionRecord)
    record.id = SessionId(session_id)
    record.user = UserId(f[Field.USER])
    record.kind = f[Field.KIND]
    record.policy = decode_policy(f[Field.POLICY])
    record.config = _config(f, configs)
    record.created_at = time_of(f[Field.CREATED_AT])
    record.last_activity = time_of(f[Field.LAST_ACTIVITY])
    record.last_seen = time_of(f[Field.LAST_SEEN])
    record.connections = int(f[Field.CONNECTIONS])
    record.ever_attached = f[Field.EVER_ATTACHED] == "1"
    record.ever_heartbeat = f.get(Field.EVER_HEARTBEAT) == "1"
    record.state = SessionState(f[Field.STATE])
    record.warning_reason = EndReason(warning_reason) if warning_reason else None
    record.ended_at = time_of(ended_at) if ended_at else None
    record.end_reason = EndReason(end_reason) if end_reason else None
    record.message_count = int(f[Field.MESSAGE_COUNT])
    record.busy = int(f.get(Field.BUSY, "0"))
    prefix, skip = Field.NODE_COUNT, len(Field.NODE_COUNT)
    counts = {k[skip:]: int(v) for k, v in f.items() if k.startswith(prefix)}
    return Loaded(
        record,
        f[Field.VERSION],
        time_of(f[Field.ARMED_AT]),
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
