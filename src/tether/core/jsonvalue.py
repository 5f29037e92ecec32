"""Free-form JSON from clients: parsed with a bound, accepted only if it can be stored.

Two limits, one for each of two questions:

* :data:`MAX_PARSE_DEPTH` (64): how deep any JSON *text* an edge parses (a
  WebSocket frame, a REST body, a ``sendBeacon`` body) may nest. Deeper
  text is refused by :func:`loads` with :class:`~tether.errors.BadJson`
  instead of reaching the parser's recursion limit.
* :data:`MAX_VALUE_DEPTH` (32) and :data:`MAX_VALUE_BYTES` (64 KiB): how deep
  and how large a *value* that tether keeps (a session's config, a message's
  metadata) may be. :func:`check_json_object` is the one check every edge and
  the Python API go through, so whatever is accepted can be journaled,
  archived as YAML and recovered; nothing accepted can block an archive.

The parse limit is the larger so that a frame or body carrying a value at the
value limit (``{"type": "config", "config": ...}``) always parses.
"""

from __future__ import annotations

import json
import math
from typing import Any

from tether.errors import BadJson, InvalidInput

MAX_PARSE_DEPTH = 64
"""Deepest nesting of arrays and objects in a JSON text an edge parses."""
MAX_VALUE_DEPTH = 32
"""Deepest nesting of a config or metadata object (the object itself is level 1)."""
MAX_VALUE_BYTES = 64 << 10
"""Largest config or metadata object, as compact UTF-8 JSON."""

_COMPACT = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False)
_SCALARS = (str, int, float, bool, type(None))


def _no_constants(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def may_nest_deeper(text: str | bytes, max_depth: int = MAX_PARSE_DEPTH) -> bool:
    """Whether ``text`` has more opening brackets than ``max_depth``; if not, it nests no deeper."""
    if isinstance(text, str):
        return text.count("[") + text.count("{") > max_depth
    return text.count(b"[") + text.count(b"{") > max_depth


def loads(text: str | bytes, *, max_depth: int = MAX_PARSE_DEPTH) -> Any:
    """Parse ``text`` as strict JSON nested at most ``max_depth`` deep, or raise :class:`BadJson`.

    ``NaN`` and ``Infinity`` (which Python's parser accepts) are refused: no
    browser could read them back. Text with no more brackets than
    ``max_depth`` cannot be too deep, so the common small frame costs one
    count on top of the parse; only the rest is measured after parsing.
    """
    try:
        value = json.loads(text, parse_constant=_no_constants)
    except RecursionError:
        raise BadJson(f"JSON nested deeper than {max_depth} levels") from None
    except ValueError as exc:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise BadJson(f"not JSON: {exc}"[:200]) from None
    if may_nest_deeper(text, max_depth) and depth(value) > max_depth:
        raise BadJson(f"JSON nested deeper than {max_depth} levels")
    return value


def depth(value: object) -> int:
    """How deeply arrays and objects nest in ``value`` (a scalar is 0, ``{}`` is 1)."""
    deepest = 0
    stack: list[tuple[object, int]] = [(value, 1)]
    while stack:
        item, level = stack.pop()
        if isinstance(item, dict):
            children: Any = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        deepest = max(deepest, level)
        stack.extend((child, level + 1) for child in children)
    return deepest


def check_json_object(
    value: object,
    what: str,
    *,
    max_depth: int = MAX_VALUE_DEPTH,
    max_bytes: int = MAX_VALUE_BYTES,
) -> None:
    """Raise :class:`InvalidInput` unless ``value`` is a plain JSON object tether can keep.

    Plain means: built only of ``dict`` (with ``str`` keys), ``list``,
    ``str`` (valid Unicode), ``int``, finite ``float``, ``bool`` and ``None``,
    exactly those types (a tuple or a str subclass is refused: JSON would
    flatten it but the YAML archive could not write it), at most
    ``max_depth`` levels deep and ``max_bytes`` long as compact JSON.
    Checked before anything is stored, so a refused value changes nothing.
    """
    if type(value) is not dict:
        raise InvalidInput(f"{what} must be an object")
    stack: list[tuple[object, str, int]] = [(value, what, 1)]
    while stack:
        item, path, level = stack.pop()
        if type(item) is dict or type(item) is list:
            if level > max_depth:
                raise InvalidInput(f"{what} is nested deeper than {max_depth} levels")
            if type(item) is list:
                stack.extend((c, f"{path}[{i}]", level + 1) for i, c in enumerate(item))
                continue
            assert isinstance(item, dict)  # for the type checker: the only other kind
            for key, child in item.items():
                if type(key) is not str:
                    raise InvalidInput(f"{_at(path)}: keys must be strings")
                stack.append((child, f"{path}.{key}", level + 1))
        elif type(item) not in _SCALARS:
            raise InvalidInput(f"{_at(path)}: {type(item).__name__} is not a JSON type")
        elif type(item) is float and not math.isfinite(item):
            raise InvalidInput(f"{_at(path)}: NaN and Infinity are not JSON")
    try:
        size = len(_COMPACT.encode(value).encode("utf-8"))
    except (TypeError, ValueError) as exc:  # lone surrogates, ints too long to print
        raise InvalidInput(f"{what} must be plain JSON: {exc}") from None
    if size > max_bytes:
        raise InvalidInput(f"{what} is {size} bytes as JSON, over the {max_bytes} byte limit")


def _at(path: str) -> str:
    # Paths of hostile input can be long; the start says enough.
    return path if len(path) <= 120 else path[:117] + "..."
