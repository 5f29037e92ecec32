"""Bounded JSON: the edge parser's depth limit and the one check for stored config and metadata."""

from __future__ import annotations

import json
from enum import StrEnum
from typing import Any

import pytest

from tether.core.jsonvalue import (
    MAX_PARSE_DEPTH,
    MAX_VALUE_BYTES,
    MAX_VALUE_DEPTH,
    check_json_object,
    depth,
    loads,
)
from tether.errors import BadJson, InvalidInput


def nested(levels: int, leaf: Any = None) -> dict[str, Any]:
    """An object ``levels`` deep: {"k": {"k": ... leaf}}."""
    value: dict[str, Any] = {"leaf": leaf} if leaf is not None else {}
    for _ in range(levels - 1):
        value = {"k": value}
    return value


def test_depth_counts_containers_not_scalars() -> None:
    """A scalar is 0 deep, {} and [] are 1, and each level of nesting adds one."""
    assert depth(3) == 0
    assert depth({}) == depth([]) == 1
    assert depth({"a": [1, {"b": []}]}) == 4
    assert depth(nested(500)) == 500


def test_loads_takes_text_at_the_depth_limit() -> None:
    """Arrays nested exactly MAX_PARSE_DEPTH deep parse."""
    text = "[" * MAX_PARSE_DEPTH + "]" * MAX_PARSE_DEPTH
    assert depth(loads(text)) == MAX_PARSE_DEPTH
    assert loads(text.encode()) == loads(text)


@pytest.mark.parametrize("levels", [MAX_PARSE_DEPTH + 1, 900, 5000, 100_000])
def test_loads_refuses_deeper_text_with_bad_json(levels: int) -> None:
    """One level past the limit, or far past the recursion limit: BadJson, never RecursionError."""
    for text in ("[" * levels + "]" * levels, '{"a":' * levels + "1" + "}" * levels):
        with pytest.raises(BadJson, match="nested deeper"):
            loads(text)


def test_loads_counts_brackets_inside_strings_only_as_a_hint() -> None:
    """Brackets inside strings make a frame no deeper: a flat object full of them parses."""
    assert loads(json.dumps({"s": "[" * 1000})) == {"s": "[" * 1000}


@pytest.mark.parametrize("text", ["{nope", "", "NaN", '{"x": Infinity}', b"\xff\xfe{}", "1" * 5000])
def test_loads_refuses_what_is_not_strict_json(text: str | bytes) -> None:
    """Syntax errors, NaN/Infinity, bad UTF-8 and ints too long to read are BadJson."""
    with pytest.raises(BadJson):
        loads(text)


def padded(levels: int, size: int) -> dict[str, Any]:
    """An object exactly ``levels`` deep and exactly ``size`` bytes of compact JSON."""
    value = nested(levels, "")
    base = len(json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode())
    return nested(levels, "x" * (size - base))


def test_check_accepts_the_largest_and_deepest_value() -> None:
    """An object MAX_VALUE_DEPTH deep and MAX_VALUE_BYTES long is accepted."""
    check_json_object(padded(MAX_VALUE_DEPTH, MAX_VALUE_BYTES), "config")


def test_check_refuses_one_level_deeper() -> None:
    """MAX_VALUE_DEPTH + 1 levels (an object or an array at the bottom): InvalidInput naming it."""
    with pytest.raises(InvalidInput, match=f"config is nested deeper than {MAX_VALUE_DEPTH}"):
        check_json_object(nested(MAX_VALUE_DEPTH + 1), "config")
    with pytest.raises(InvalidInput, match="nested deeper"):
        check_json_object(nested(MAX_VALUE_DEPTH, []), "config")


def test_check_refuses_one_byte_more() -> None:
    """MAX_VALUE_BYTES + 1 bytes of JSON: InvalidInput with the size and the limit."""
    with pytest.raises(InvalidInput, match=f"over the {MAX_VALUE_BYTES} byte limit"):
        check_json_object(padded(2, MAX_VALUE_BYTES + 1), "metadata")


class Colour(StrEnum):
    """A str subclass: JSON would flatten it, YAML's safe emitter cannot write it."""

    RED = "red"


@pytest.mark.parametrize(
    ("value", "match"),
    [
        ([], "must be an object"),
        ({"a": (1, 2)}, "tuple is not a JSON type"),
        ({"a": {1, 2}}, "set is not a JSON type"),
        ({"a": Colour.RED}, "Colour is not a JSON type"),
        ({"a": {1: "x"}}, "keys must be strings"),
        ({"a": [float("nan")]}, "NaN and Infinity"),
        ({"a": "\ud800"}, "plain JSON"),
        ({"a": 10**5000}, "plain JSON"),
    ],
)
def test_check_refuses_what_json_or_yaml_could_not_carry(value: Any, match: str) -> None:
    """Non-objects, non-JSON types, non-str keys, NaN, lone surrogates, huge ints: InvalidInput."""
    with pytest.raises(InvalidInput, match=match):
        check_json_object(value, "config")
