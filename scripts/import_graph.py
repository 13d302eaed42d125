"""Print the import graph of the `guard` package and every cycle in it.

    python scripts/import_graph.py [PACKAGE_DIR]     # default: guard/ next to this script

Counted: imports that run when a module is imported — at module level, including inside
``if``/``try``/``with`` blocks — but not those under ``if TYPE_CHECKING:`` (never run) nor
those inside functions (run when called, after every module has loaded). ``from . import
keys`` is an edge to ``guard.keys``, not to the package ``guard``; ``from .wire import
Grant`` is an edge to ``guard.wire``. Exits 1 when there is a cycle (tests/test_imports.py
runs it)."""

from __future__ import annotations

import ast
import sys
from pathlib import Path


def module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _targets(module: str, is_package: bool, node: ast.ImportFrom, known: set[str]) -> set[str]:
    """The modules a ``from … import …`` statement loads (those inside the package)."""
    if node.level:
        base = module.split(".") if is_package else module.split(".")[:-1]
        base = base[: len(base) - (node.level - 1)]
        source = ".".join(base + ([node.module] if node.module else []))
    else:
        source = node.module or ""
    out = set()
    for alias in node.names:
        sub = f"{source}.{alias.name}"
        out.add(sub if sub in known else source)  # a submodule, or a name defined in source
    return out


def imports(path: Path, module: str, known: set[str]) -> set[str]:
    deps: set[str] = set()
    is_package = path.name == "__init__.py"

    def visit(body: list[ast.stmt]) -> None:
        for node in body:
            if isinstance(node, ast.Import):
                deps.update(a.name for a in node.names)
            elif isinstance(node, ast.ImportFrom):
                deps.update(_targets(module, is_package, node, known))
            elif isinstance(node, ast.If):
                if not _is_type_checking(node.test):
                    visit(node.body)
                visit(node.orelse)
            elif isinstance(node, ast.Try):
                visit(node.body)
                visit(node.orelse)
                visit(node.finalbody)
                for h in node.handlers:
                    visit(h.body)
            elif isinstance(node, ast.With):
                visit(node.body)

    visit(ast.parse(path.read_text(encoding="utf-8")).body)
    return {d for d in deps if d in known and d != module}


def graph(root: Path) -> dict[str, set[str]]:
    paths = {module_name(p, root): p for p in sorted(root.rglob("*.py"))}
    known = set(paths)
    return {m: imports(p, m, known) for m, p in paths.items()}


def cycles(g: dict[str, set[str]]) -> list[list[str]]:
    """Every elementary cycle found by a depth-first search (each reported once)."""
    found: list[list[str]] = []
    state: dict[str, int] = {}  # 1 on the stack, 2 done

    def dfs(u: str, stack: list[str]) -> None:
        state[u] = 1
        stack.append(u)
        for v in sorted(g[u]):
            if state.get(v) == 1:
                found.append([*stack[stack.index(v) :], v])
            elif v not in state:
                dfs(v, stack)
        stack.pop()
        state[u] = 2

    for m in sorted(g):
        if m not in state:
            dfs(m, [])
    return found


def main(argv: list[str]) -> int:
    root = Path(argv[1]) if len(argv) > 1 else Path(__file__).resolve().parents[1] / "guard"
    g = graph(root.resolve())
    for m in sorted(g):
        print(f"{m} -> {', '.join(sorted(g[m])) or '-'}")
    found = cycles(g)
    if found:
        for c in found:
            print("cycle: " + " -> ".join(c))
        return 1
    print("cycles: none")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
