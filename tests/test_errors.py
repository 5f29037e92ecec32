"""One exception tree: every exception class tether defines lives in ``tether.errors``."""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import re

import tether
import tether.errors
from tether.errors import TetherError

SIGNALS = {
    "tether.service.ws.closes.Closed",
    "tether.store.redis.codec.Unresolved",
}
"""Control-flow signals that never leave their package (``tether.errors`` says why)."""


def _defined_exceptions() -> dict[str, type[BaseException]]:
    found: dict[str, type[BaseException]] = {}
    for info in pkgutil.walk_packages(tether.__path__, "tether."):
        if info.name.endswith(".__main__"):
            continue  # importing it runs the command
        module = importlib.import_module(info.name)
        for name, value in vars(module).items():
            if (
                inspect.isclass(value)
                and issubclass(value, BaseException)
                and value.__module__ == module.__name__
            ):
                found[f"{module.__name__}.{name}"] = value
    return found


def test_every_exception_class_is_in_the_tree_or_a_documented_signal() -> None:
    """No module outside tether.errors defines an error class; only the named signals differ."""
    found = _defined_exceptions()
    outside = {name for name in found if not name.startswith("tether.errors.")}
    assert outside == SIGNALS
    for name in SIGNALS:
        assert not issubclass(found[name], TetherError), name
        assert name in (tether.errors.__doc__ or ""), f"{name} is not explained in tether.errors"


def _drawing() -> list[tuple[int, str]]:
    """``(column, class name)`` for each line of the tree drawn in tether.errors' docstring."""
    doc = tether.errors.__doc__ or ""
    block = doc.split("::", 1)[1].split("\n\n")[1]
    rows = []
    for line in block.splitlines():
        found = re.match(r"[\s│├└─]*(\w+)", line)
        assert found is not None, line
        rows.append((found.start(1), found.group(1)))
    return rows


def test_the_docstring_draws_every_class_of_the_tree() -> None:
    """The tree in tether.errors' docstring names each TetherError subclass, once."""
    tree = [
        name
        for name, value in vars(tether.errors).items()
        if inspect.isclass(value) and issubclass(value, TetherError)
    ]
    assert sorted(name for _, name in _drawing()) == sorted(tree)


def test_the_drawing_shows_each_class_under_its_base() -> None:
    """Indentation in the drawing follows the real inheritance (each child under its parent)."""
    stack: list[tuple[int, str]] = []
    for column, name in _drawing():
        while stack and stack[-1][0] >= column:
            stack.pop()
        cls = getattr(tether.errors, name)
        if stack:
            assert cls.__bases__ == (getattr(tether.errors, stack[-1][1]),), name
        else:
            assert cls is TetherError
        stack.append((column, name))


def test_signals_are_not_caught_as_tether_errors() -> None:
    """The signals derive from Exception only, so ``except TetherError`` never swallows one."""
    found = _defined_exceptions()
    for name in SIGNALS:
        assert found[name].__bases__ == (Exception,), name
