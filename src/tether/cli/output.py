"""How the commands print things: short ages and flattened values."""

from __future__ import annotations

from typing import Any


def age(seconds: float) -> str:
    """A short human form of a length of time (``42s``, ``17m``, ``3.5h``)."""
    seconds = max(0.0, seconds)
    if seconds < 120:
        return f"{seconds:.0f}s"
    if seconds < 7200:
        return f"{seconds / 60:.0f}m"
    return f"{seconds / 3600:.1f}h"


def fmt(value: Any) -> str:
    """A JSON value on one line: objects as ``k=v`` pairs, ``null`` as ``-``."""
    if isinstance(value, dict):
        return ", ".join(f"{k}={fmt(v)}" for k, v in value.items()) or "{}"
    return "-" if value is None else str(value)
