"""The project's own import graph, read from source (ast), for the boundary and cycle tests.

Every import counts: module level, inside functions (lazy imports) and under TYPE_CHECKING, since each
is a dependency a reader has to follow and a cycle among them is a knot whichever way it is loaded.
"""

from __future__ import annotations

import ast
import fnmatch
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
SKIP_DIRS = {".git", ".venv", "node_modules", ".local", "__pycache__", ".mypy_cache", ".ruff_cache", "build"}


@dataclass(frozen=True, slots=True)
class Import:
    source: str  # the importing module, dotted
    target: str  # the imported module (or package, or the package of an imported name), dotted
    line: int


def module_name(path: Path, root: Path = REPO_ROOT) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def python_files(root: Path = REPO_ROOT, under: Iterable[str] = ("",)) -> Iterator[Path]:
    for top in under:
        base = root / top
        if base.is_file():
            yield base
            continue
        for path in sorted(base.rglob("*.py")):
            rel = path.relative_to(root).parts
            if not any(part in SKIP_DIRS or part.startswith(".venv") for part in rel):
                yield path


def imports_of(path: Path, root: Path = REPO_ROOT) -> list[Import]:
    """Each import in `path`: `import a.b` -> a.b; `from a import b` -> a.b (a module) or a (a name)."""
    source = module_name(path, root)
    package = source if path.name == "__init__.py" else source.rpartition(".")[0]
    found: list[Import] = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            found += [Import(source, alias.name, node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            for alias in node.names:
                candidate = f"{base}.{alias.name}"
                is_module = _module_path(candidate, root) is not None
                found.append(Import(source, candidate if is_module else base, node.lineno))
    return found


def _module_path(dotted: str, root: Path) -> Path | None:
    path = root.joinpath(*dotted.split("."))
    for candidate in (path.with_suffix(".py"), path / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def funcignore_patterns(root: Path = REPO_ROOT) -> list[str]:
    lines = (root / ".funcignore").read_text(encoding="utf-8").splitlines()
    return [line.strip() for line in lines if line.strip() and not line.startswith("#")]


def deployed(path: Path, patterns: list[str], root: Path = REPO_ROOT) -> bool:
    """Whether `func azure functionapp publish` ships `path`: no part of it matches a .funcignore entry
    (the entries are gitignore-style names: `dir/` for folders, a name or glob for files)."""
    parts = path.relative_to(root).parts
    for pattern in patterns:
        if pattern.endswith("/"):
            if any(fnmatch.fnmatch(part, pattern.rstrip("/")) for part in parts[:-1]):
                return False
        elif fnmatch.fnmatch(parts[-1], pattern) or fnmatch.fnmatch("/".join(parts), pattern):
            return False
    return True


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (or a module importing itself)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:  # Tarjan; the graph is small enough for recursion
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in edges.get(node, ()):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                component.append(top)
                if top == node:
                    break
            if len(component) > 1 or node in edges.get(node, ()):
                found.append(sorted(component))

    for node in sorted(edges):
        if node not in index:
            visit(node)
    return found
