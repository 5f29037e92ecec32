"""The public face: what applications import from ``tether`` and ``tether.testing``."""

from __future__ import annotations

import importlib
import re
import tomllib
from pathlib import Path

import pytest

import tether
import tether.errors
import tether.testing

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "src" / "tether"


def test_the_names_the_readme_promises_import_from_the_package() -> None:
    """``from tether import ...`` gives the manager, policy, journal, archive and both stores."""
    from tether import (  # noqa: F401  (the import itself is the assertion)
        FileJournal,
        MemoryStore,
        Policy,
        RedisStore,
        SessionManager,
        YamlArchive,
    )

    assert SessionManager.__module__ == "tether.runtime.manager"
    promised = {
        "FileJournal",
        "MemoryStore",
        "Policy",
        "RedisStore",
        "SessionManager",
        "YamlArchive",
    }
    assert promised <= set(tether.__all__)


@pytest.mark.parametrize("module", [tether, tether.testing])
def test_all_lists_only_public_names_that_exist(module: object) -> None:
    """Every name in ``__all__`` exists, none is private, and none is listed twice."""
    names = module.__all__  # type: ignore[attr-defined]
    assert len(names) == len(set(names))
    for name in names:
        assert not name.startswith("_"), name
        assert hasattr(module, name), name


def test_every_error_class_is_re_exported() -> None:
    """Each class of the one exception tree can be caught as ``tether.<Name>``."""
    tree = {
        name
        for name, value in vars(tether.errors).items()
        if isinstance(value, type) and issubclass(value, tether.errors.TetherError)
    }
    assert tree <= set(tether.__all__)
    for name in tree:
        assert getattr(tether, name) is getattr(tether.errors, name)


def _readme_layout() -> list[str]:
    readme = (ROOT / "README.md").read_text()
    block = readme.split("## Layout", 1)[1].split("```", 2)[1]
    names: list[str] = []
    for line in block.splitlines():
        if not line.startswith("  "):
            continue
        entry = line.split("  ")[1].strip()
        names.extend(re.findall(r"[a-z_]+(?:\.py|/)", entry.split("  ")[0]))
    return names


def test_readme_layout_names_every_module_of_the_tree() -> None:
    """The README's Layout lists each top-level module and package of src/tether, nothing more."""
    tree = {
        p.name + ("/" if p.is_dir() else "")
        for p in PACKAGE.iterdir()
        if (p.is_dir() and (p / "__init__.py").exists()) or p.suffix == ".py"
    }
    assert set(_readme_layout()) == tree


def test_readme_layout_follows_the_layers_contract() -> None:
    """The Layout lists the layers in the order import-linter enforces, top to bottom."""
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    contract = config["tool"]["importlinter"]["contracts"][0]
    layers = [
        name.strip().removeprefix("tether.")
        for layer in contract["layers"]
        for name in layer.split("|")
    ]
    listed = [name.removesuffix(".py").removesuffix("/") for name in _readme_layout()]
    in_contract = [name for name in listed if name in layers]
    assert in_contract == sorted(in_contract, key=layers.index)
    assert set(in_contract) == set(layers)


def test_every_layer_of_the_contract_exists() -> None:
    """Each module the layers contract names can be imported (no stale names)."""
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    for layer in config["tool"]["importlinter"]["contracts"][0]["layers"]:
        for name in layer.split("|"):
            importlib.import_module(name.strip())


def test_the_layers_contract_names_documents_that_exist() -> None:
    """The layers contract's name points at a README section that is there (no stale doc)."""
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    name = config["tool"]["importlinter"]["contracts"][0]["name"]
    docs = re.findall(r"[\w/]+\.md", name)
    assert docs == ["README.md"]
    section = name.split("README.md,", 1)[1].strip(" )")
    assert f"## {section}" in (ROOT / "README.md").read_text()
