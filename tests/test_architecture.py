"""The import graph, checked independently of import-linter's contracts (pyproject.toml): no cycle between
the top-level packages, and each domain's code under its own folder."""

from __future__ import annotations

import grimp

PACKAGES = ("kernel", "core", "mes", "inventory", "planning", "dashboards", "edge", "simulators", "app")


def top_level_imports() -> dict[str, set[str]]:
    graph = grimp.build_graph(*PACKAGES)
    edges: dict[str, set[str]] = {package: set() for package in PACKAGES}
    for importer in graph.modules:
        for imported in graph.find_modules_directly_imported_by(importer):
            source, target = importer.split(".")[0], imported.split(".")[0]
            if source != target:
                edges[source].add(target)
    return edges


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Every package that can reach itself, with one path that does."""
    found = []
    for start in edges:
        paths = [[start]]
        seen = set()
        while paths:
            path = paths.pop()
            for following in sorted(edges[path[-1]]):
                if following == start:
                    found.append([*path, start])
                elif following not in seen:
                    seen.add(following)
                    paths.append([*path, following])
    return found


def test_no_cycle_between_top_level_packages():
    assert cycles(top_level_imports()) == []


def test_the_kernel_imports_no_other_package_and_the_root_is_imported_by_none():
    edges = top_level_imports()
    assert edges["kernel"] == set()
    assert not [package for package, imported in edges.items() if "app" in imported]


def test_inventory_code_lives_in_inventory():
    graph = grimp.build_graph("mes")
    inventory_words = ("purchas", "sales", "transfer", "stocktake", "valuation", "stock", "importing", "reports")
    assert [module for module in graph.modules if any(word in module.split(".")[-1] for word in inventory_words)] == []
