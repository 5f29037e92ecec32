"""Rules the test suite keeps about itself, checked on its own source."""

from __future__ import annotations

import ast
from pathlib import Path

TESTS = Path(__file__).parent
MAX_SLEEP_S = 0.005
# ``clock.sleep(600)`` on a FakeClock costs nothing; these modules sleep for real.
REAL_CLOCK_MODULES = {"asyncio", "time", "anyio", "trio"}


def _test_modules() -> list[Path]:
    return sorted(TESTS.rglob("test_*.py"))


def _tests(tree: ast.Module) -> list[ast.FunctionDef | ast.AsyncFunctionDef]:
    return [
        node
        for node in ast.walk(tree)
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
        and node.name.startswith("test_")
    ]


def test_every_test_states_its_behaviour_in_a_docstring() -> None:
    """Every test function has a docstring saying what behaviour it proves."""
    missing = [
        f"{path.relative_to(TESTS)}::{fn.name}"
        for path in _test_modules()
        for fn in _tests(ast.parse(path.read_text()))
        if not ast.get_docstring(fn)
    ]
    assert missing == []


def test_no_test_sleeps_longer_than_a_few_milliseconds() -> None:
    """Timeouts are tested with the fake clock: no real sleep above 5 ms in tests."""
    offenders = []
    for path in _test_modules():
        for node in ast.walk(ast.parse(path.read_text())):
            if not (isinstance(node, ast.Call) and node.args):
                continue
            func = node.func
            real_sleep = (
                isinstance(func, ast.Attribute)
                and func.attr == "sleep"
                and isinstance(func.value, ast.Name)
                and func.value.id in REAL_CLOCK_MODULES
            ) or (isinstance(func, ast.Name) and func.id == "sleep")
            arg = node.args[0]
            if (
                real_sleep
                and isinstance(arg, ast.Constant)
                and isinstance(arg.value, int | float)
                and arg.value > MAX_SLEEP_S
            ):
                offenders.append(f"{path.relative_to(TESTS)}:{node.lineno} sleep({arg.value})")
    assert offenders == []
