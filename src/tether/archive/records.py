"""The journal's on-disk format, encoded and decoded without any I/O.

::

    journal := MAGIC record*
    record  := length:u32le  crc32(body):u32le  body
    body    := kind:u8  payload (JSON, UTF-8)

``kind`` is ``H`` (the header: session id, user, kind, start, config), ``M`` (a
transcript message) or ``C`` (a config change). The length and checksum let a
reader tell a record that was cut short by a crash (a *torn tail*, dropped
without fuss) from one damaged in the middle of the file (reported, and the
records after it salvaged by scanning for the next record whose checksum
holds).
"""

from __future__ import annotations

import json
import math
import struct
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from tether.core.transcript import Message, check_content, parse_role
from tether.errors import InvalidInput

MAGIC = b"TTHRJNL1"
HEADER = b"H"
MESSAGE = b"M"
CONFIG = b"C"
MAX_RECORD = 16 << 20
"""Bodies larger than this are never written, so a larger length means damage."""

_PREFIX = struct.Struct("<II")
FRAME_OVERHEAD = _PREFIX.size
"""Bytes of length and checksum in front of every frame's body."""
_KINDS = (HEADER, MESSAGE, CONFIG)
_JSON = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False)
"""Built once: ``json.dumps`` with non-default options builds an encoder per call."""
_json_string: Callable[[str], str] = json.encoder.encode_basestring
"""A JSON string literal, as ``_JSON`` writes one (``ensure_ascii=False``)."""
_SCAN_LIMIT = 8 << 20
"""How far past a bad record the reader looks for the next good one."""


def encode(kind: bytes, payload: dict[str, Any]) -> bytes:
    """One framed record. Raises :class:`InvalidInput` for payloads JSON cannot carry."""
    try:
        body = kind + _JSON.encode(payload).encode("utf-8")
    except (TypeError, ValueError) as exc:  # UnicodeEncodeError is a ValueError
        raise InvalidInput(f"cannot be stored: {exc}") from None
    if len(body) > MAX_RECORD:
        raise InvalidInput(f"record of {len(body)} bytes exceeds the {MAX_RECORD} byte limit")
    return frame(body)


def header_record(
    session_id: str, user: str, kind: str, created_at: float, config: dict[str, Any]
) -> bytes:
    """The first record of every journal."""
    return MAGIC + encode(
        HEADER,
        {"session_id": session_id, "user": user, "kind": kind, "created_at": created_at,
         "config": config},
    )  # fmt: skip


def message_record(message: Message) -> bytes:
    """A transcript message.

    Appends are the hot path, so a message without metadata is formatted
    directly (the same bytes the JSON encoder gives, a third of its cost);
    anything else goes through the encoder.
    """
    ts = message.ts
    if message.metadata or type(ts) is not float or not math.isfinite(ts):
        return encode(MESSAGE, message.to_dict())
    try:
        content = _json_string(message.content).encode("utf-8")
    except UnicodeEncodeError as exc:
        raise InvalidInput(f"cannot be stored: {exc}") from None
    body = b'M{"seq":%d,"role":"%s","content":%s,"ts":%s}' % (
        message.seq,
        message.role.value.encode("ascii"),
        content,
        float.__repr__(ts).encode("ascii"),
    )
    if len(body) > MAX_RECORD:
        raise InvalidInput(f"record of {len(body)} bytes exceeds the {MAX_RECORD} byte limit")
    return frame(body)


def config_record(config: dict[str, Any], ts: float) -> bytes:
    """A replaced config."""
    return encode(CONFIG, {"config": config, "ts": ts})


@dataclass(slots=True)
class JournalContents:
    """What a reader could make of one journal."""

    header: dict[str, Any] | None = None
    messages: list[Message] = field(default_factory=list)
    config: dict[str, Any] | None = None
    config_ts: float | None = None
    """When the latest config record was written (``None``: the header's config holds)."""
    last_ts: float | None = None
    torn_bytes: int = 0
    """Bytes of an incomplete last record, dropped."""
    damage: list[str] = field(default_factory=list)
    """Human-readable notes about damaged regions; empty for a healthy journal."""
    refused: str | None = None
    """Set when the file is not a tether journal at all; nothing else is filled."""


def decode(data: bytes) -> JournalContents:
    """Read a whole journal. Never raises: problems are reported in the result."""
    out = JournalContents()
    if not data.startswith(MAGIC):
        if MAGIC.startswith(data):
            out.torn_bytes = len(data)  # torn while the file was being created
        else:
            out.refused = "not a tether journal (bad magic bytes)"
        return out
    offset, end = len(MAGIC), len(data)
    while offset < end:
        body = frame_at(data, offset, _KINDS, MAX_RECORD)
        if body is not None:
            _apply(out, body, offset)
            offset += _PREFIX.size + len(body)
            continue
        resume = next_frame(data, offset + 1, _KINDS, MAX_RECORD)
        if resume is None:
            out.torn_bytes = end - offset
            break
        out.damage.append(f"bytes {offset}..{resume} unreadable and skipped")
        offset = resume
    # Sorted and one per seq: a record is never written twice, but a reader
    # that trusted that would double a line if it ever were.
    out.messages = list({m.seq: m for m in reversed(out.messages)}.values())
    out.messages.sort(key=lambda m: m.seq)
    return out


def decode_records(records: list[bytes]) -> JournalContents:
    """Read records given one by one (the header's carries the magic bytes, the others not)."""
    return decode(MAGIC + b"".join(r.removeprefix(MAGIC) for r in records))


def merge(primary: JournalContents, extra: JournalContents) -> JournalContents:
    """``primary`` plus what only ``extra`` holds (header, messages by seq, a newer config).

    Used by recovery to put back the records a power cut took from a journal
    file but its commit log kept. Records are never written twice with
    different content, so where both have a seq, either copy is the message.
    """
    out = JournalContents(
        header=primary.header or extra.header,
        torn_bytes=primary.torn_bytes,
        damage=list(primary.damage),
    )
    by_seq = {m.seq: m for m in extra.messages}
    by_seq.update((m.seq, m) for m in primary.messages)
    out.messages = sorted(by_seq.values(), key=lambda m: m.seq)
    latest = max(
        (c for c in (primary, extra) if c.config_ts is not None),
        key=lambda c: c.config_ts or 0.0,
        default=None,
    )
    if latest is not None:
        out.config, out.config_ts = latest.config, latest.config_ts
    stamps = [c.last_ts for c in (primary, extra) if c.last_ts is not None]
    out.last_ts = max(stamps) if stamps else None
    return out


def frame(body: bytes) -> bytes:
    """``body`` behind its length and checksum: the framing of journal and commit-log records."""
    return _PREFIX.pack(len(body), zlib.crc32(body)) + body


def frame_at(data: bytes, offset: int, kinds: tuple[bytes, ...], max_body: int) -> bytes | None:
    """The body of a well-formed frame at ``offset`` whose first byte is one of ``kinds``."""
    if len(data) - offset < _PREFIX.size:
        return None
    length, crc = _PREFIX.unpack_from(data, offset)
    start = offset + _PREFIX.size
    if not 1 <= length <= min(max_body, len(data) - start):
        return None
    body = data[start : start + length]
    if zlib.crc32(body) != crc or body[:1] not in kinds:
        return None
    return body


def next_frame(data: bytes, start: int, kinds: tuple[bytes, ...], max_body: int) -> int | None:
    """Offset of the next well-formed frame after a bad one, or ``None`` (a torn tail).

    A crash can only tear the end of a file, so a good frame anywhere after a
    bad one proves the bad one is damage, not a tear. Message text cannot
    forge a frame: a valid length's high byte is zero, and JSON text never
    contains a raw NUL byte.
    """
    stop = min(len(data), start + _SCAN_LIMIT)
    for offset in range(start, stop):
        if frame_at(data, offset, kinds, max_body) is not None:
            return offset
    if stop < len(data):
        return stop  # give up scanning; report the rest as unreadable, never as torn
    return None


def _apply(out: JournalContents, body: bytes, offset: int) -> None:
    """Check a record whole, then apply it; an unusable one is noted and changes nothing."""
    kind = body[:1]
    try:
        payload = json.loads(body[1:].decode("utf-8"))
        if not isinstance(payload, dict):
            raise ValueError("payload is not an object")
        if kind == HEADER:
            created = _time(payload["created_at"])
            if not isinstance(payload.get("kind", ""), str):
                raise ValueError("kind is not text")
            _object(payload.get("config") or {})
            out.header, out.last_ts = payload, created
        elif kind == CONFIG:
            config, ts = _object(payload["config"]), _time(payload["ts"])
            out.config, out.config_ts = config, ts  # the last written wins
            out.last_ts = max(out.last_ts or 0.0, ts)
        else:
            message = _message(payload)
            out.messages.append(message)
            out.last_ts = max(out.last_ts or 0.0, message.ts)
    except (ValueError, KeyError, TypeError, OverflowError, RecursionError, InvalidInput) as exc:
        out.damage.append(f"record at byte {offset} has a valid checksum but is unusable: {exc}")


_EARLIEST, _LATEST = 0.0, 253402300799.0  # 1970 to the end of year 9999: what datetime holds


def _time(value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError("a timestamp is not a number")
    ts = float(value)
    if not _EARLIEST <= ts <= _LATEST:  # also refuses NaN
        raise ValueError(f"timestamp {ts!r} is out of range")
    return ts


def _object(value: object) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ValueError("expected an object")
    return dict(value)


def _message(payload: dict[str, Any]) -> Message:
    seq, content = payload["seq"], payload["content"]
    if isinstance(seq, bool) or not isinstance(seq, int) or not isinstance(content, str):
        raise ValueError("message fields have the wrong types")
    metadata = payload.get("metadata")
    # Only the types here, not the size and depth limits of what is accepted
    # now: a journal written before those limits still recovers every message
    # (the archive writes whatever it cannot represent as JSON text).
    check_content(content)
    return Message(
        seq,
        parse_role(payload["role"]),
        content,
        _time(payload["ts"]),
        _object(metadata) if metadata else None,
    )
