"""What a new user meets before any code runs: the distribution name they ``pip install``,
the licence, and docs that point only at things in this repository (issue 12, items 1, 11)."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import tomllib

ROOT = Path(__file__).resolve().parent.parent
DIST = "guard-concurrency"  # free on PyPI; `guard` there is an unrelated 2013 WSGI package


def pyproject() -> dict:  # type: ignore[type-arg]
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def tracked(*patterns: str) -> list[Path]:
    out = subprocess.run(
        ["git", "ls-files", *patterns], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout
    return [ROOT / p for p in out.split()]


def test_distribution_name_is_ours_and_the_dev_extra_follows_it() -> None:
    project = pyproject()["project"]
    assert project["name"] == DIST
    dev = project["optional-dependencies"]["dev"]
    assert f"{DIST}[server,aws]" in dev
    assert not any(re.match(r"guard\[", d) for d in dev)
    assert "openapi-spec-validator" in " ".join(dev)  # item 7 validates with it


OLD_INSTALL = re.compile(r"""pip install\s+(-\S+\s+)*['"]?guard(\[[^\]]*\])?(['"\s]|$)""", re.M)


def test_every_install_line_names_the_distribution() -> None:
    files = [
        p
        for p in tracked("*.md", "*.py", "*.mjs", "Dockerfile", "*.toml", "*.sh", "*.tf")
        if "node_modules" not in p.parts
    ]
    bad = [
        f"{p.relative_to(ROOT)}: {m.group(0).strip()}"
        for p in files
        for m in OLD_INSTALL.finditer(p.read_text(errors="replace"))
    ]
    assert not bad, bad
    docs = (ROOT / "docs" / "sdk.md").read_text()
    assert f"pip install {DIST}" in docs
    assert f"{DIST}[server,aws]" in (ROOT / "Dockerfile").read_text()


def test_nothing_points_at_a_repository_that_is_not_ours() -> None:
    files = [
        p
        for p in tracked()
        if p.suffix in (".py", ".md", ".mjs", ".yaml", ".yml", ".json")
        and "node_modules" not in p.parts
    ]
    needle = "github.com/" + "guard/guard"  # the old problem-type base, not a repository of ours
    bad = [str(p.relative_to(ROOT)) for p in files if needle in p.read_text(errors="replace")]
    assert not bad, bad
    from guard import problems

    assert problems.PREFIX == "urn:guard:problem:"


def test_license_is_the_full_apache_2_text_pyproject_names() -> None:
    assert pyproject()["project"]["license"] == {"text": "Apache-2.0"}
    text = (ROOT / "LICENSE").read_text()
    assert "Apache License" in text and "Version 2.0, January 2004" in text
    for section in (
        "1. Definitions.",
        "4. Redistribution.",
        "9. Accepting Warranty",
        "END OF TERMS AND CONDITIONS",
        "APPENDIX: How to apply",
    ):
        assert section in text
    assert len(text) > 10_000  # the full text, not a pointer to it


def test_http_md_is_self_contained() -> None:
    """docs/http.md carries the route reference itself; no link to a file that is not here."""
    text = (ROOT / "docs" / "http.md").read_text()
    assert "DESIGN" + ".md" not in text  # (spelled in pieces: tests/test_docs.py greps)
    for link in re.findall(r"\]\(([^)#]+)", text):
        if not link.startswith("http"):
            assert (ROOT / "docs" / link).resolve().exists(), link
