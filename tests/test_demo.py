"""`guard demo --short` (the README's story) on the session redis-server: with guard's limits
the API is never throttled, without them it is; ETL stays under its cap."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from click.testing import CliRunner
from redis_proc import RedisProcess

from guard.cli import main
from guard.demo import Scenario, run_demo


def test_demo_short_story_holds(redis_server: RedisProcess) -> None:
    sc = Scenario.short()
    res = run_demo(redis_server.url, sc, namespace="demo-test")
    api_with, api_without = res.with_guard.groups["api"], res.without.groups["api"]
    assert api_with.throttled == 0 and api_with.refused == 0
    assert api_without.throttled > 0
    assert res.with_guard.groups["etl"].peak <= sc.etl_max
    assert res.with_guard.pool_peak <= sc.pool and res.without.pool_peak == sc.pool
    assert res.with_guard.groups["etl"].refused > 0  # guard deferred ETL, Lambda did not throttle
    assert res.with_guard.groups["etl"].throttled == 0
    again = run_demo(redis_server.url, sc, namespace="demo-test")  # deterministic
    assert again.without.groups["api"].throttled == api_without.throttled
    assert again.with_guard.groups["etl"].completed == res.with_guard.groups["etl"].completed


def test_demo_command_prints_table_and_plot(redis_server: RedisProcess, tmp_path: Path) -> None:
    png = tmp_path / "demo.png"
    r = CliRunner().invoke(
        main,
        ["demo", "--short", "--redis-url", redis_server.url, "--plot", str(png)],
        catch_exceptions=False,
    )
    assert r.exit_code == 0, r.output
    line = next(ln for ln in r.output.splitlines() if ln.startswith("API throttled"))
    without, with_guard = line.split()[-2:]
    assert int(without) > 0 and int(with_guard) == 0
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert redis_server.client().keys("guard:{guard-demo*") == []


def test_demo_without_matplotlib_says_so(
    redis_server: RedisProcess, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib -> ImportError
    png = tmp_path / "demo.png"
    r = CliRunner().invoke(
        main, ["demo", "--short", "--redis-url", redis_server.url, "--plot", str(png)]
    )
    assert r.exit_code == 0, r.output
    assert "matplotlib is not installed" in r.output and "API throttled" in r.output
    assert not png.exists()
