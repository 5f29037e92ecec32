"""The import graph of src/tether has no cycle, so every module can be read bottom-up."""

from __future__ import annotations

# grimp builds the graph import-linter checks the layers on (it comes with import-linter).
import grimp


def _cycles(graph: grimp.ImportGraph) -> list[tuple[str, ...]]:
    """One shortest cycle through each direct import that is part of one."""
    found: set[tuple[str, ...]] = set()
    for importer in sorted(graph.modules):
        for imported in sorted(graph.find_modules_directly_imported_by(importer)):
            back = graph.find_shortest_chain(importer=imported, imported=importer)
            if back is not None:
                cycle = (importer, *back)
                start = cycle.index(min(cycle[:-1]))  # one spelling per cycle
                found.add(cycle[start:-1] + cycle[:start] + (cycle[start],))
    return sorted(found)


def test_no_module_of_tether_imports_itself_through_others() -> None:
    """No import cycle anywhere in src/tether, imports made only for type checking included."""
    graph = grimp.build_graph("tether", exclude_type_checking_imports=False)
    assert _cycles(graph) == []


def test_the_cycle_check_finds_a_cycle() -> None:
    """The check itself reports a three-module cycle, named once."""
    graph = grimp.ImportGraph()
    for name in ("p.a", "p.b", "p.c", "p.d"):
        graph.add_module(name)
    graph.add_import(importer="p.a", imported="p.b")
    graph.add_import(importer="p.b", imported="p.c")
    graph.add_import(importer="p.c", imported="p.a")
    graph.add_import(importer="p.d", imported="p.a")
    assert _cycles(graph) == [("p.a", "p.b", "p.c", "p.a")]
