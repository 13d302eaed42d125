"""No import cycles in guard/, and every module imports on its own.

A cycle makes the result of an import depend on which module happens to be imported first
(``import guard.cli_admin`` alone used to fail with an ImportError while ``import guard.cli``
worked). `scripts/import_graph.py` prints the graph anyone can read; these tests hold it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "scripts" / "import_graph.py"
MODULES = sorted(
    ".".join(p.relative_to(REPO).with_suffix("").parts).removesuffix(".__init__")
    for p in (REPO / "guard").rglob("*.py")
)


def test_the_import_graph_of_guard_has_no_cycle() -> None:
    proc = subprocess.run([sys.executable, str(SCRIPT)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.rstrip().endswith("cycles: none"), proc.stdout
    assert "guard.store -> " in proc.stdout and "guard.wire -> guard.errors\n" in proc.stdout


def test_the_graph_script_finds_a_cycle(tmp_path: Path) -> None:
    """The checker itself can fail: a two-module cycle through ``from . import`` is found,
    and an import under TYPE_CHECKING is not an edge."""
    pkg = tmp_path / "pkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text("from . import b\n")
    (pkg / "b.py").write_text("from .a import x\n")
    (pkg / "c.py").write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from . import d\n"
    )
    (pkg / "d.py").write_text("from . import c\n")
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), str(pkg)], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 1, proc.stdout
    assert "cycle: pkg.a -> pkg.b -> pkg.a" in proc.stdout, proc.stdout
    assert "pkg.c -> -" in proc.stdout and "cycle: pkg.c" not in proc.stdout


@pytest.mark.parametrize("module", MODULES)
def test_module_imports_on_its_own(module: str) -> None:
    """Each module first in a fresh interpreter (what a cycle breaks)."""
    proc = subprocess.run(
        [sys.executable, "-c", f"import {module}"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO,
    )
    assert proc.returncode == 0, proc.stderr
