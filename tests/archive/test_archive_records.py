"""The journal's record format: round trips, torn tails, bit flips, refusals, forgeries."""

from __future__ import annotations

import json
import struct
import zlib
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tether.archive import records
from tether.archive.records import MAGIC, decode
from tether.core.transcript import Message, Role
from tether.errors import InvalidInput

T0 = 1_700_000_000.0
SID = "0123456789abcdef0123456789abcdef"
SETTINGS = settings(max_examples=200, deadline=None)


def frame(body: bytes) -> bytes:
    """A record with a correct length and checksum around any body."""
    return struct.pack("<II", len(body), zlib.crc32(body)) + body


def message(seq: int, content: str = "", **extra: Any) -> Message:
    """A message with a distinct content and timestamp per seq."""
    return Message(seq, Role.USER, content or f"message {seq}", T0 + seq, extra or None)


def journal(messages: list[Message]) -> tuple[bytes, list[int]]:
    """A journal with a header and ``messages``; also the start offset of every record."""
    data = records.header_record(SID, "alice", "chat", T0, {"voice": "calm"})
    starts = [len(MAGIC)]
    for m in messages:
        starts.append(len(data))
        data += records.message_record(m)
    return data, starts


def flip(data: bytes, bit: int) -> bytes:
    """``data`` with one bit inverted."""
    out = bytearray(data)
    out[bit // 8] ^= 1 << (bit % 8)
    return bytes(out)


FIVE = [message(i) for i in range(1, 6)]


def test_records_round_trip_header_messages_and_config() -> None:
    """Header, messages (with metadata and non-ASCII text) and config changes decode as written."""
    msgs = [
        message(1, "héllo 👋 — ünïcode"),
        Message(2, Role.ASSISTANT, "answer", T0 + 2.123456, {"model": "m", "n": [1, 2.5]}),
        Message(3, Role.TOOL, "", T0 + 3),
        Message(4, Role.SYSTEM, "line\nbreak\ttab\x00nul", T0 + 4),
    ]
    data, _ = journal(msgs)
    data += records.config_record({"voice": "bright"}, T0 + 10)
    out = decode(data)
    assert out.refused is None
    assert out.damage == []
    assert out.torn_bytes == 0
    assert out.header == {
        "session_id": SID,
        "user": "alice",
        "kind": "chat",
        "created_at": T0,
        "config": {"voice": "calm"},
    }
    assert out.messages == msgs
    assert out.config == {"voice": "bright"}
    assert out.last_ts == T0 + 10


@SETTINGS
@given(
    st.lists(
        st.tuples(
            st.sampled_from(list(Role)),
            st.text(st.characters(codec="utf-8")),
            st.none()
            | st.dictionaries(
                st.text(max_size=5), st.integers() | st.text(max_size=5) | st.booleans()
            ),
        ),
        max_size=8,
    )
)
def test_records_round_trip_any_storable_message(
    items: list[tuple[Role, str, dict[str, Any] | None]],
) -> None:
    """Any message that check_content accepts decodes back equal, in seq order."""
    msgs = [
        Message(i, role, text, T0 + i, meta or None)
        for i, (role, text, meta) in enumerate(items, 1)
    ]
    out = decode(journal(msgs)[0])
    assert out.messages == msgs
    assert out.damage == []
    assert out.torn_bytes == 0


@pytest.mark.parametrize(
    "payload",
    [{"x": {1, 2}}, {"x": float("nan")}, {"x": float("inf")}, {"x": "\ud800"}, {"x": object()}],
    ids=["set", "nan", "inf", "lone-surrogate", "object"],
)
def test_records_encode_refuses_payloads_json_cannot_carry(payload: dict[str, Any]) -> None:
    """encode raises InvalidInput for non-JSON, NaN or unencodable payloads: nothing is written."""
    with pytest.raises(InvalidInput, match="cannot be stored"):
        records.encode(records.MESSAGE, payload)


def test_records_encode_refuses_a_body_larger_than_max_record() -> None:
    """A record whose body would exceed MAX_RECORD is refused with InvalidInput naming the limit."""
    with pytest.raises(InvalidInput, match="limit"):
        records.encode(records.MESSAGE, {"c": "x" * records.MAX_RECORD})


def test_records_truncation_at_every_byte_of_last_record_is_a_torn_tail() -> None:
    """Cut anywhere inside the last record: the earlier messages, torn_bytes > 0, no damage."""
    data, starts = journal(FIVE)
    last = starts[-1]
    for cut in range(last + 1, len(data)):
        out = decode(data[:cut])
        assert out.refused is None, cut
        assert out.header is not None, cut
        assert out.messages == FIVE[:-1], cut
        assert out.torn_bytes == cut - last, cut
        assert out.damage == [], cut
    assert decode(data).messages == FIVE


def test_records_truncation_inside_header_leaves_no_header_and_no_damage() -> None:
    """Cut inside the header record: no header, no messages, a torn tail, no damage, not refused."""
    data, _ = journal([])
    for cut in range(len(MAGIC) + 1, len(data)):
        out = decode(data[:cut])
        assert out.header is None, cut
        assert out.refused is None, cut
        assert out.torn_bytes == cut - len(MAGIC), cut
        assert out.damage == [], cut


def test_records_every_bit_flip_in_a_middle_record_is_noted_and_the_rest_salvaged() -> None:
    """Any single flipped bit in a middle record: damage noted, never raises, all others kept."""
    data, starts = journal(FIVE)
    start, end = starts[3], starts[4]  # the record of message 3
    for bit in range(start * 8, end * 8):
        out = decode(flip(data, bit))
        assert out.refused is None, bit
        assert out.header is not None, bit
        assert out.messages == [FIVE[0], FIVE[1], FIVE[3], FIVE[4]], bit
        assert len(out.damage) == 1, bit
        assert f"bytes {start}..{end}" in out.damage[0], bit
        assert out.torn_bytes == 0, bit


@SETTINGS
@given(st.data())
def test_records_a_flipped_bit_anywhere_after_the_magic_costs_at_most_its_own_record(
    data_strategy: st.DataObject,
) -> None:
    """A flip in record k loses only record k; in the last record it reads as a torn tail."""
    data, starts = journal(FIVE)
    bit = data_strategy.draw(st.integers(len(MAGIC) * 8, len(data) * 8 - 1))
    out = decode(flip(data, bit))
    bounds = [*starts, len(data)]
    hit = next(i for i in range(len(starts)) if bounds[i] * 8 <= bit < bounds[i + 1] * 8)
    if hit == 0:
        assert out.header is None
        assert out.messages == FIVE
    else:
        assert out.header is not None
        assert out.messages == [m for m in FIVE if m.seq != hit]
    if hit == len(starts) - 1:
        assert out.damage == []
        assert out.torn_bytes == len(data) - starts[-1]
    else:
        assert len(out.damage) == 1
        assert out.torn_bytes == 0


@pytest.mark.parametrize("zeros", [1, 4, 7, 8, 9, 64, 4096])
def test_records_zero_filled_tail_is_torn_not_damage(zeros: int) -> None:
    """Zero bytes after the last record (a file extended but never written) are a torn tail."""
    data, _ = journal(FIVE)
    out = decode(data + bytes(zeros))
    assert out.messages == FIVE
    assert out.torn_bytes == zeros
    assert out.damage == []


def test_records_last_record_zeroed_in_place_is_torn() -> None:
    """A last record whose bytes became zeros is dropped as torn; the earlier ones stay."""
    data, starts = journal(FIVE)
    out = decode(data[: starts[-1]] + bytes(len(data) - starts[-1]))
    assert out.messages == FIVE[:-1]
    assert out.torn_bytes == len(data) - starts[-1]
    assert out.damage == []


@pytest.mark.parametrize(
    "data",
    [
        b"NOTAJRNL" + records.message_record(message(1)),
        b"TTHRJNL2" + records.message_record(message(1)),
        flip(journal(FIVE)[0], 0),
        b"session_id: x\nmessages: []\n",
        b"\x00" * 64,
        b"X",
    ],
    ids=["other-magic", "future-version", "flipped-magic", "yaml", "zeros", "one-byte"],
)
def test_records_wrong_magic_is_refused_and_nothing_is_read(data: bytes) -> None:
    """A file not starting with the journal magic is refused with a reason; nothing decoded."""
    out = decode(data)
    assert out.refused is not None
    assert "not a tether journal" in out.refused
    assert out.header is None
    assert out.messages == []


def test_records_magic_prefix_only_is_torn_or_empty_never_refused() -> None:
    """Empty file or any prefix of the magic (torn at creation) is torn/empty, never refused."""
    for k in range(len(MAGIC) + 1):
        out = decode(MAGIC[:k])
        assert out.refused is None, k
        assert out.header is None, k
        assert out.messages == [], k
        assert out.damage == [], k
        assert out.torn_bytes == (k if k < len(MAGIC) else 0), k


def test_records_duplicate_seq_is_kept_once_and_messages_come_back_sorted() -> None:
    """A seq written twice yields one message; out-of-order records come back in seq order."""
    data = records.header_record(SID, "alice", "chat", T0, {})
    for m in [message(1), message(3), message(2), message(2), message(1)]:
        data += records.message_record(m)
    out = decode(data)
    assert [m.seq for m in out.messages] == [1, 2, 3]
    assert out.damage == []


@pytest.mark.parametrize(
    "body",
    [
        b"M[1,2]",
        b'M"just text"',
        b"Mnull",
        b"M{not json",
        b"M\xff\xfe\x00",
        b"M{}",
        b'M{"seq":"1","role":"user","content":"x","ts":1}',
        b'M{"seq":1,"role":"user","content":5,"ts":1}',
        b'M{"seq":1,"role":"wizard","content":"x","ts":1}',
        b'M{"seq":1,"role":"user","content":"x","ts":"soon"}',
        b'M{"seq":1,"role":"user","content":"x","ts":[1]}',
        b'H{"session_id":"x"}',
        b'H{"created_at":"yesterday"}',
        b'C{"config":5,"ts":1}',
        b'C{"ts":1}',
    ],
)
def test_records_a_checksum_valid_but_unusable_record_is_noted_not_raised(body: bytes) -> None:
    """A well-framed record with a bad payload is a damage note; the records around it survive."""
    data, _ = journal([message(1)])
    data += frame(body) + records.message_record(message(2))
    out = decode(data)
    assert out.messages == [message(1), message(2)]
    assert len(out.damage) == 1
    assert "unusable" in out.damage[0]
    assert out.header is not None


@pytest.mark.parametrize(
    "body",
    [b'H{"session_id":"x"}', b'H{"created_at":"yesterday","session_id":"y"}'],
)
def test_records_an_unusable_header_record_does_not_replace_the_good_header(body: bytes) -> None:
    """A later header record noted as unusable leaves the journal's good header in place."""
    data, _ = journal([message(1)])
    out = decode(data + frame(body))
    assert len(out.damage) == 1
    assert out.header is not None
    assert out.header["session_id"] == SID


def test_records_an_unusable_config_record_does_not_change_the_config() -> None:
    """A config record noted as unusable (bad ts) leaves the config as it was."""
    data, _ = journal([message(1)])
    out = decode(data + frame(b'C{"config":{"evil":1},"ts":"x"}'))
    assert len(out.damage) == 1
    assert out.config is None


def test_records_unknown_record_kind_is_damage_not_a_message() -> None:
    """A checksum-valid record of an unknown kind is skipped as damage; later records survive."""
    data, _ = journal([message(1)])
    data += frame(b'X{"seq":9}') + records.message_record(message(2))
    out = decode(data)
    assert [m.seq for m in out.messages] == [1, 2]
    assert len(out.damage) == 1


def test_records_a_length_beyond_max_record_is_never_trusted() -> None:
    """A length field above MAX_RECORD is treated as damage, not as a huge record to read."""
    data, _ = journal([message(1)])
    body = b'M{"seq":5}'
    bogus = struct.pack("<II", records.MAX_RECORD + 1, zlib.crc32(body)) + body
    data += bogus + records.message_record(message(2))
    out = decode(data)
    assert [m.seq for m in out.messages] == [1, 2]
    assert len(out.damage) == 1


def _forged(seq: int) -> bytes:
    return records.message_record(message(seq, "FORGED"))


@pytest.mark.parametrize(
    "content",
    [
        _forged(99).decode("latin-1"),
        (MAGIC + _forged(99)).decode("latin-1"),
        _forged(99)[8:].decode("latin-1"),
        "\x00\x00\x00" + _forged(99).decode("latin-1") + "\x00",
        _forged(99).decode("latin-1") * 3,
    ],
    ids=["record", "magic+record", "body", "nul-padded", "repeated"],
)
@pytest.mark.parametrize("damaged", [False, True])
def test_records_user_content_cannot_forge_a_record(content: str, damaged: bool) -> None:
    """Content that embeds a framed record's bytes yields no extra message, even when scanned."""
    msgs = [message(1), message(2, content), message(3)]
    data, starts = journal(msgs)
    if damaged:  # a bad record before the content makes the reader scan through it
        data = flip(data, starts[1] * 8 + 100)
    out = decode(data)
    expected = msgs[1:] if damaged else msgs
    assert out.messages == expected
    assert all(m.content != "FORGED" for m in out.messages)


@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=2048))
def test_records_decode_never_raises_on_random_bytes(data: bytes) -> None:
    """decode returns a result for any bytes at all; it never raises."""
    out = decode(data)
    assert out.refused is not None or out.torn_bytes >= 0


@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=2048))
def test_records_decode_never_raises_on_magic_followed_by_random_bytes(tail: bytes) -> None:
    """After a valid magic, arbitrary bytes are torn or damage, never an exception or a refusal."""
    out = decode(MAGIC + tail)
    assert out.refused is None
    assert out.torn_bytes + sum(1 for _ in out.damage) >= 0


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4)
    ),
    max_leaves=12,
)
FIELDS = st.fixed_dictionaries(
    {},
    optional={
        "seq": JSON,
        "role": st.sampled_from(["user", "tool", "x"]) | JSON,
        "content": JSON,
        "ts": JSON,
        "metadata": JSON,
        "session_id": JSON,
        "created_at": JSON,
        "config": JSON,
    },
)


@SETTINGS
@given(st.lists(st.tuples(st.sampled_from([b"H", b"M", b"C"]), JSON | FIELDS), max_size=6))
def test_records_decode_never_raises_on_checksum_valid_records_with_any_json(
    items: list[tuple[bytes, Any]],
) -> None:
    """Well-framed records carrying arbitrary JSON payloads decode or are noted, never raise."""
    data = MAGIC + b"".join(frame(kind + json.dumps(p).encode()) for kind, p in items)
    out = decode(data)
    assert out.refused is None
    assert out.torn_bytes == 0


@given(
    content=st.text(),
    seq=st.integers(min_value=1, max_value=2**53),
    ts=st.floats(min_value=0, max_value=253402300799.0),
    role=st.sampled_from(list(Role)),
)
@settings(max_examples=300)
def test_message_records_are_the_bytes_the_json_encoder_gives(
    content: str, seq: int, ts: float, role: Role
) -> None:
    """The formatted fast path writes exactly what the generic JSON path would."""
    msg = Message(seq, role, content, ts)
    try:
        expected = records.encode(records.MESSAGE, msg.to_dict())
    except InvalidInput:
        with pytest.raises(InvalidInput):
            records.message_record(msg)
        return
    assert records.message_record(msg) == expected
    assert decode(MAGIC + expected).messages == [msg]


def test_a_message_with_a_lone_surrogate_is_refused_with_a_clear_error() -> None:
    """Text UTF-8 cannot carry never reaches a journal: InvalidInput, no bytes."""
    with pytest.raises(InvalidInput, match="cannot be stored"):
        records.message_record(Message(1, Role.USER, "half \ud800 a pair", 1.0))
