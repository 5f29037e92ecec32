"""Hostile inputs for ``make fuzz``: a seeded generator, pure Python, no I/O.

Every value comes from one :class:`random.Random`, so a seed replays a run.
:func:`hostile_frame` draws one WebSocket frame from weighted categories
(valid commands, wrong types for every field of every command in
PROTOCOL.md, deep nesting, huge and odd numbers, unknown types, truncated
JSON, byte-level mutations of valid frames, binary frames); the frames that
end a connection by contract (oversized: 1009, invalid UTF-8: 1007, a bad
token: 1008) come from :func:`terminal_frame` so each connection sends at most
one, last. :func:`hostile_value` is the shared pool of bad JSON values that
the REST fuzzer puts into bodies too.
"""

from __future__ import annotations

import json
import random
import string
from typing import Any

MAX_BYTES = 65536
"""The server's ``TETHER_MAX_MESSAGE_BYTES`` (its default): larger frames close with 1009."""

COMMANDS: dict[str, dict[str, Any]] = {
    "hello": {"token": "x", "v": 1},
    "start": {"kind": "chat", "config": {"lang": "en"}},
    "resume": {"session_id": "0" * 32, "after": 0},
    "observe": {"session_id": "0" * 32, "user": "me", "wait_s": 0.5},
    "activity": {},
    "message": {"role": "user", "content": "hi", "metadata": {"k": "v"}},
    "config": {"config": {"lang": "fr"}},
    "end": {},
}
"""Each client command of PROTOCOL.md with valid values for every field (``ping`` aside:
pings are the harness's own probe, so the generator never sends a valid one)."""

CONTENT_LIMIT = 2048
"""Longest generated string field (frames stay well under the size limit unless oversized)."""


def deep(rng: random.Random, depth: int | None = None) -> str:
    """JSON text nested ``depth`` deep (arrays, objects or a mix): valid, and hostile."""
    depth = depth if depth is not None else rng.choice((50, 200, 999, 1001, 2000, 5000, 20000))
    shape = rng.randrange(3)
    if shape == 0:
        return "[" * depth + "]" * depth
    if shape == 1:
        return '{"a":' * depth + "1" + "}" * depth
    return '[{"a":' * (depth // 2) + "0" + "}]" * (depth // 2)


_ODD_NUMBERS = (
    "1e999",
    "-1e999",
    "1e-999",
    "9" * 4301,  # over Python's int-string limit
    "9" * 400,
    "-0",
    "0.0000000000000000000000001",
    "18446744073709551616",
    "-9223372036854775809",
    "1E+308",
    "NaN",
    "Infinity",
    "-Infinity",
    "01",
    "1.",
    ".5",
    "0x10",
    "1_000",
)


def odd_number(rng: random.Random) -> str:
    """A number's JSON text: huge, tiny, or not JSON at all (NaN, hex, leading zero)."""
    return rng.choice(_ODD_NUMBERS)


def odd_string(rng: random.Random) -> str:
    """A JSON string literal that is legal but awkward: escapes, surrogates, controls, length."""
    choice = rng.randrange(9)
    if choice == 0:
        return json.dumps("x" * rng.randrange(CONTENT_LIMIT))
    if choice == 1:
        return '"\\ud800"'  # a lone surrogate, escaped
    if choice == 2:
        return '"\\udfff\\ud800"'
    if choice == 3:
        return json.dumps("".join(chr(rng.randrange(0, 32)) for _ in range(20)))
    if choice == 4:
        return json.dumps("é☃𝄞" * rng.randrange(1, 50), ensure_ascii=False)
    if choice == 5:
        return '"\\u0000"'
    if choice == 6:
        return json.dumps("%74oken=" + "A" * 40)
    if choice == 7:
        return json.dumps("".join(rng.choice(string.printable) for _ in range(64)))
    return '""'


def hostile_value(rng: random.Random) -> str:
    """JSON text for one hostile value (any type, any shape)."""
    choice = rng.randrange(12)
    if choice == 0:
        return deep(rng)
    if choice == 1:
        return odd_number(rng)
    if choice == 2:
        return odd_string(rng)
    if choice == 3:
        return rng.choice(("null", "true", "false", "0", "-1", "[]", "{}", '""'))
    if choice == 4:
        return "[" + ",".join(str(rng.randrange(10**6)) for _ in range(rng.randrange(500))) + "]"
    if choice == 5:
        keys = rng.randrange(1, 400)
        return "{" + ",".join(f'"k{i}":{i}' for i in range(keys)) + "}"
    if choice == 6:
        return '{"a":1,"a":2}'  # duplicate keys
    if choice == 7:
        return '{"__proto__":{"x":1},"constructor":null}'
    if choice == 8:
        return json.dumps({"nested": json.loads(deep(rng, rng.choice((100, 300, 400, 600))))})
    if choice == 9:
        return str(rng.random() * 10 ** rng.randrange(-300, 300))
    if choice == 10:
        return json.dumps([[]] * rng.randrange(1, 200))
    return odd_string(rng)


def _object(fields: dict[str, str]) -> str:
    return "{" + ",".join(f"{json.dumps(k)}:{v}" for k, v in fields.items()) + "}"


_KINDS = tuple(COMMANDS)
_KIND_WEIGHTS = tuple(0.02 if kind in ("resume", "observe", "end") else 1.0 for kind in _KINDS)
"""``resume`` and ``observe`` of an unknown session close with 4404 by contract, ``end`` with
1000: kept rare so that a connection lives long enough to carry its share of frames (the
server reads them all) and reaches its terminal frame."""


def _kind(rng: random.Random) -> str:
    return rng.choices(_KINDS, _KIND_WEIGHTS)[0]


def valid_frame(rng: random.Random, kind: str | None = None) -> str:
    """A well-formed command (it may still be refused: not attached, unknown session)."""
    kind = kind or _kind(rng)
    return json.dumps({"type": kind, **COMMANDS[kind]})


def wrong_field(rng: random.Random) -> str:
    """A command with one field (``type`` included) replaced by a hostile value."""
    kind = _kind(rng)
    fields = {"type": json.dumps(kind), **{k: json.dumps(v) for k, v in COMMANDS[kind].items()}}
    names = [*fields, "extra"]
    target = rng.choice(names) if len(names) > 1 else "type"
    fields[target] = hostile_value(rng)
    if rng.random() < 0.2:  # or drop a field
        fields.pop(rng.choice(names), None)
    return _object(fields)


def unknown_type(rng: random.Random) -> str:
    """A frame whose ``type`` is missing, unknown, or not a string; or a non-object."""
    choice = rng.randrange(6)
    if choice == 0:
        return json.dumps({"type": rng.choice(("welcome", "pong", "session.started", "HELLO"))})
    if choice == 1:
        return json.dumps({"type": "".join(rng.choices(string.ascii_letters, k=rng.randrange(40)))})
    if choice == 2:
        return json.dumps({"content": "no type"})
    if choice == 3:
        return _object({"type": hostile_value(rng)})
    if choice == 4:
        return hostile_value(rng)  # not an object at all
    return json.dumps({"type": "x" * 5000})


def truncated(rng: random.Random) -> str:
    """A valid frame cut short, or with junk after it."""
    text = rng.choice((valid_frame(rng), wrong_field(rng)))
    if rng.random() < 0.7:
        return text[: rng.randrange(max(1, len(text)))]
    return text + rng.choice(("}", "]", ",", " x", "\x00", '{"type":"ping"}'))


def mutated(rng: random.Random) -> str:
    """A valid frame with a few random character flips, inserts and deletes (ASCII only)."""
    chars = list(valid_frame(rng))
    for _ in range(rng.randrange(1, 6)):
        at = rng.randrange(len(chars) + 1)
        op = rng.randrange(3)
        if op == 0 and at < len(chars):
            chars[at] = rng.choice(string.printable)
        elif op == 1:
            chars.insert(at, rng.choice('{}[]":,\\0123456789eE+-.tfn '))
        elif at < len(chars):
            del chars[at]
    return "".join(chars)


def binary(rng: random.Random) -> bytes:
    """A binary frame: a valid command's bytes, or random bytes."""
    if rng.random() < 0.5:
        return valid_frame(rng).encode()
    return rng.randbytes(rng.randrange(1, 512))


CATEGORIES: tuple[tuple[str, float], ...] = (
    ("valid", 0.15),
    ("wrong_field", 0.30),
    ("deep", 0.08),
    ("odd_number", 0.05),
    ("unknown_type", 0.10),
    ("truncated", 0.12),
    ("mutated", 0.15),
    ("binary", 0.05),
)
_NAMES = tuple(name for name, _ in CATEGORIES)
_WEIGHTS = tuple(weight for _, weight in CATEGORIES)


def _is_probe(text: str) -> bool:
    """Whether ``text`` is a frame the server would answer with ``pong`` (reserved for probes)."""
    try:
        data = json.loads(text)
    except (ValueError, RecursionError):
        return False
    return isinstance(data, dict) and data.get("type") == "ping"


def hostile_frame(rng: random.Random) -> tuple[str, str | bytes]:
    """One non-terminal hostile frame: (category, text or bytes). Never a valid ``ping``."""
    while True:
        category = rng.choices(_NAMES, _WEIGHTS)[0]
        frame: str | bytes
        if category == "valid":
            frame = valid_frame(rng)
        elif category == "wrong_field":
            frame = wrong_field(rng)
        elif category == "deep":
            frame = rng.choice(
                (
                    deep(rng),
                    _object(
                        {
                            "type": '"message"',
                            "role": '"user"',
                            "content": '"x"',
                            "metadata": '{"m":' + deep(rng) + "}",
                        }
                    ),
                    _object({"type": '"config"', "config": '{"c":' + deep(rng) + "}"}),
                    _object({"type": '"start"', "config": '{"c":' + deep(rng) + "}"}),
                )
            )
        elif category == "odd_number":
            kind = rng.choice(("resume", "observe", "hello", "message"))
            field = {"resume": "after", "observe": "wait_s", "hello": "v", "message": "content"}
            frame = _object({"type": json.dumps(kind), field[kind]: odd_number(rng)})
        elif category == "unknown_type":
            frame = unknown_type(rng)
        elif category == "truncated":
            frame = truncated(rng)
        elif category == "mutated":
            frame = mutated(rng)
        else:
            frame = binary(rng)
        if isinstance(frame, str) and (len(frame.encode()) > MAX_BYTES or _is_probe(frame)):
            continue
        return category, frame


def terminal_frame(rng: random.Random) -> tuple[str, str | bytes, int]:
    """A frame after which the server closes by contract: (category, frame, close code)."""
    choice = rng.randrange(3)
    if choice == 0:
        return "oversized", "[" + "1," * (MAX_BYTES // 2) + "1]", 1009
    if choice == 1:
        return "oversized_binary", b"\x00" * (MAX_BYTES + 1), 1009
    # Invalid UTF-8 in a text frame: RFC 6455 says fail the connection with 1007.
    return "invalid_utf8", b'{"type":"message","content":"\xff\xfe\xc3("}', 1007
