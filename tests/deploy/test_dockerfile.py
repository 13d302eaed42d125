"""The Dockerfile builds a multi-stage python:3.11-slim image that runs `guard serve` as a
non-root user, health-checks /healthz without curl, takes its configuration from the
environment only, and bakes in no secrets; .dockerignore keeps the context small and keeps
local secrets and state out of it."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

SECRETISH = re.compile(r"TOKEN|PASSWORD|SECRET|PASSWD|API_KEY|ACCESS_KEY|CREDENTIAL", re.I)


@pytest.fixture(scope="module")
def instructions(repo: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    text = (repo / "Dockerfile").read_text()
    text = re.sub(r"\\\n", " ", "\n".join(ln for ln in text.splitlines() if not ln.startswith("#")))
    out = []
    for line in text.splitlines():
        if line.strip():
            word, _, rest = line.strip().partition(" ")
            out.append((word.upper(), rest.strip()))
    return out


def args_of(instructions: list[tuple[str, str]], word: str) -> list[str]:
    return [rest for w, rest in instructions if w == word]


def test_multi_stage_python_311_slim(instructions: list[tuple[str, str]]) -> None:
    defaults = dict(
        a.split("=", 1) for a in args_of(instructions, "ARG") if "=" in a and "FROM" not in a
    )
    froms = args_of(instructions, "FROM")
    assert len(froms) >= 2
    images = [re.sub(r"\$\{(\w+)\}", lambda m: defaults[m.group(1)], f.split()[0]) for f in froms]
    assert all(re.fullmatch(r"python:3\.11-slim(-\w+)?", i) for i in images), images
    assert any(" AS build" in f for f in froms)
    later = args_of(instructions, "RUN") + args_of(instructions, "COPY")
    assert any(re.search(r"\bfrom=build\b", r) for r in later), "runtime stage must use build"


def test_installs_server_and_aws_extras(instructions: list[tuple[str, str]]) -> None:
    runs = " ".join(args_of(instructions, "RUN"))
    assert ".[server,aws]" in runs and "guard-concurrency[server,aws]" in runs


def test_runs_as_non_root(instructions: list[tuple[str, str]]) -> None:
    words = [w for w, _ in instructions]
    users = args_of(instructions, "USER")
    assert users, "no USER"
    user = users[-1].split(":")[0]
    assert user not in ("root", "0")
    last_user = len(words) - 1 - words[::-1].index("USER")
    assert words.index("ENTRYPOINT") > last_user
    assert words.index("HEALTHCHECK") > last_user


def test_entrypoint_is_guard_serve(instructions: list[tuple[str, str]]) -> None:
    [entry] = args_of(instructions, "ENTRYPOINT")
    assert json.loads(entry) == ["guard", "serve", "--bind", "0.0.0.0:8000"]
    assert not args_of(instructions, "CMD")


def test_healthcheck_uses_urllib_on_healthz(instructions: list[tuple[str, str]]) -> None:
    [hc] = args_of(instructions, "HEALTHCHECK")
    assert "/healthz" in hc and "urllib" in hc
    assert "curl" not in hc and "wget" not in hc


def test_configuration_only_through_env_and_no_secrets(
    instructions: list[tuple[str, str]], guard_serve_env: frozenset
) -> None:
    env_names = set()
    for rest in args_of(instructions, "ENV") + args_of(instructions, "ARG"):
        for name in re.findall(r"(\w+)=", rest) or [rest.split()[0]]:
            env_names.add(name)
    assert not {n for n in env_names if SECRETISH.search(n)}, "secret-like ENV/ARG baked in"
    guardish = {n for n in env_names if n.startswith(("GUARD_", "PROMETHEUS_"))}
    assert guardish <= guard_serve_env
    assert "GUARD_REDIS_URL" not in env_names, "the store URL must come from the runtime env"
    for src in args_of(instructions, "COPY") + args_of(instructions, "ADD"):
        assert not re.search(r"\.env\b|\.pem\b|id_rsa|\.tfstate", src), src
    assert not args_of(instructions, "ADD"), "use COPY"


def test_copied_paths_exist_and_are_not_ignored(
    instructions: list[tuple[str, str]], repo: Path
) -> None:
    ignored = {
        ln.strip().rstrip("/")
        for ln in (repo / ".dockerignore").read_text().splitlines()
        if ln.strip() and not ln.startswith("#")
    }
    for rest in args_of(instructions, "COPY"):
        if rest.startswith("--from"):
            continue
        *sources, _dest = rest.split()
        for src in sources:
            assert (repo / src).exists(), src
            assert src.rstrip("/") not in ignored, f"{src} is excluded by .dockerignore"


def test_dockerignore_excludes_local_state(repo: Path) -> None:
    lines = set((repo / ".dockerignore").read_text().splitlines())
    assert {".git", ".venv", ".tools", ".env", "**/*.tfstate"} <= lines
