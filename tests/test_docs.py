"""The docs stand alone and stay true to the code: no reference to files outside the
repository, every relative link resolves, the admission rule and the S1/S2 invariants are
defined where they are used, and docs/ARCHITECTURE.md names every module and exactly the
use-hash fields the scripts write (`guard.wire`)."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

from guard import wire

ROOT = Path(__file__).resolve().parents[1]
ARCH = (ROOT / "docs" / "ARCHITECTURE.md").read_text()
# spelled in pieces so this file does not match itself
OUTSIDE = ("DESIGN" + ".md", "CONTRACT" + "-NOTES", "../" + "shared")


def tracked() -> list[Path]:
    out = subprocess.run(
        ["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout
    return [ROOT / p for p in out.splitlines() if (ROOT / p).is_file()]


def test_nothing_references_files_outside_the_repository() -> None:
    hits = []
    for path in tracked():
        if path.suffix not in (".py", ".md", ".lua", ".yaml", ".yml", ".toml", ".tf", ".mjs"):
            continue
        text = path.read_text(errors="replace")
        hits += [f"{path.relative_to(ROOT)}: {s}" for s in OUTSIDE if s in text]
    assert not hits, hits


def test_relative_links_in_the_docs_resolve() -> None:
    for doc in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        for link in re.findall(r"\]\(([^)#\s]+)", doc.read_text()):
            if not link.startswith(("http://", "https://", "mailto:")):
                assert (doc.parent / link).resolve().exists(), (doc.name, link)


def test_the_admission_rule_and_s1_s2_are_defined_in_the_repository() -> None:
    text = (ROOT / "docs" / "guarantees.md").read_text()
    assert "## The admission rule" in text
    assert "**S1 (safety)**" in text and "**S2 (protected headroom)**" in text
    for path in [*ROOT.glob("guard/**/*.py"), *ROOT.glob("guard/lua/*.lua")]:
        src = path.read_text()
        if re.search(r"\bS[12]\b", src):
            assert "guarantees.md" in src or path.suffix == ".lua", path


def test_architecture_lists_every_module() -> None:
    for path in sorted((ROOT / "guard").glob("*.py")):
        if path.name != "__init__.py":
            assert f"`guard/{path.name}`" in ARCH, path.name
    assert "`guard/server/`" in ARCH and "`guard/lua/*.lua`" in ARCH


def test_architecture_use_hash_fields_are_the_wire_fields_the_scripts_write() -> None:
    bullet = ARCH[ARCH.index("- `guard:{ns}:use` hash") :]
    bullet = bullet[: bullet.index("\n- ")]
    listed = {re.sub(r"<[^>]+>.*", "", f) for f in re.findall(r"`([^`]*)`", bullet)}
    listed -= {"guard:{ns}:use", '""', "function", "account", "quarantine", "group:"}
    use_fields = {
        wire.ACCOUNT,
        wire.IN_USE,
        wire.GROUP_IN_USE,
        wire.GRANTS,
        wire.EXPIRED,
        wire.UNAVAILABLE,
        wire.THROTTLES,
        wire.SHADOW_THROTTLES,
        wire.HOLD,
        wire.FENCE,
        wire.REAP,
        wire.WAITERS_UNTIL,
        wire.EPOCH,
        wire.QUARANTINE_UNTIL,
        wire.MAX_TTL,
        wire.QUEUE_UNTIL,
        wire.GROUP_QUEUE_UNTIL,
        wire.TIMED_OUT,
        wire.WAIT_TIME,
    }
    assert listed == use_fields, listed ^ use_fields
    lua = "".join(p.read_text() for p in (ROOT / "guard" / "lua").glob("*.lua"))
    for f in use_fields:
        assert f"'{f}'" in lua, f"no script writes or reads {f!r}"
