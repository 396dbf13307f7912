"""The product boundary, read from the source: what is deployed imports no tools, and nothing imports in
a circle (tests/support/imports.py builds the graph with ast; lazy and TYPE_CHECKING imports count)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.imports import (
    REPO_ROOT,
    Import,
    cycles,
    deployed,
    funcignore_patterns,
    imports_of,
    module_name,
    python_files,
)

# Top-level names the deployed code must never import: the tools, the local stack, tests, and what only
# the tools need. `rich` and `azure.servicebus` are not in requirements.txt.
NOT_DEPLOYED = ("orders_cli", "devstack", "tests", "bench", "scripts", "rich", "azure.servicebus")
PROJECT = ("shared", "orders_cli", "devstack", "bench", "scripts", "tests", "function_app.py")


def _matches(target: str, names: tuple[str, ...]) -> bool:
    return any(target == name or target.startswith(name + ".") for name in names)


def deployed_python_files(root: Path = REPO_ROOT) -> list[Path]:
    patterns = funcignore_patterns(root)
    return [p for p in python_files(root) if deployed(p, patterns, root)]


def test_the_deployable_tree_is_the_functions_app_and_shared() -> None:
    tops = {p.relative_to(REPO_ROOT).parts[0] for p in deployed_python_files()}
    assert tops == {"function_app.py", "shared"}


def test_the_deployable_tree_imports_no_tool_test_or_dev_stack() -> None:
    bad = [
        f"{imp.source}:{imp.line} imports {imp.target}"
        for path in deployed_python_files()
        for imp in imports_of(path)
        if _matches(imp.target, NOT_DEPLOYED)
    ]
    assert bad == []


def test_shared_imports_nothing_of_the_project_outside_shared() -> None:
    outside = ("orders_cli", "devstack", "tests", "bench", "scripts", "function_app")
    bad = [
        imp for p in python_files(under=("shared",)) for imp in imports_of(p) if _matches(imp.target, outside)
    ]
    assert bad == []


def test_bench_imports_nothing_from_tests() -> None:
    bad = [
        imp
        for p in python_files(under=("bench",))
        for imp in imports_of(p)
        if _matches(imp.target, ("tests",))
    ]
    assert bad == []


def project_graph(root: Path = REPO_ROOT) -> dict[str, set[str]]:
    """module -> the project modules it imports (a name imported from a package counts as the package)."""
    files = list(python_files(root, under=PROJECT))
    modules = {module_name(p, root) for p in files}
    edges: dict[str, set[str]] = {m: set() for m in modules}
    for path in files:
        for imp in imports_of(path, root):
            target = imp.target
            while target and target not in modules:
                target = target.rpartition(".")[0]
            if target and target != imp.source:
                edges[imp.source].add(target)
    return edges


def test_no_import_cycles_among_the_projects_modules() -> None:
    assert cycles(project_graph()) == []


# --- the checks themselves can fail ----------------------------------------------------------------


def test_the_import_reader_sees_lazy_type_only_and_relative_imports(tmp_path: Path) -> None:
    pkg = tmp_path / "pkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "b.py").write_text("")
    (pkg / "a.py").write_text(
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n    from . import b\n"
        "def f():\n    import rich.table\n"
        "from .b import name\n"
    )
    found = {(i.target, i.line) for i in imports_of(pkg / "a.py", tmp_path)}
    assert {("pkg.b", 3), ("rich.table", 5), ("pkg.b", 6)} <= found
    assert all(isinstance(i, Import) for i in imports_of(pkg / "a.py", tmp_path))


@pytest.mark.parametrize(
    ("path", "shipped"),
    [("shared/x.py", True), ("orders_cli/x.py", False), ("tests/unit/x.py", False), (".venv-a/x.py", False)],
)
def test_funcignore_matching(tmp_path: Path, path: str, shipped: bool) -> None:
    patterns = ["tests/", "orders_cli/", ".venv-*/", "local.settings.json"]
    assert deployed(tmp_path / path, patterns, tmp_path) is shipped


def test_a_cycle_is_found() -> None:
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []
