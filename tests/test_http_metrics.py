"""/metrics: families and labels of docs/http.md, promtool-clean, equal across
gunicorn workers."""

from __future__ import annotations

import os
import shutil
import subprocess
import urllib.request
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

import guard

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out = {}
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def value(text: str, name: str, **labels: str) -> float | None:
    for (n, lab), v in samples(text).items():
        if n == name and all(dict(lab).get(k) == want for k, want in labels.items()):
            return v
    return None


def test_families_and_labels(http: Any, ns: str, g: guard.Guard) -> None:
    http.put(f"/v1/namespaces/{ns}", json={"max_concurrency": 3})
    http.put(f"/v1/namespaces/{ns}/groups/api", json={"reserved": 2, "members": ["login"]})
    http.put(f"/v1/namespaces/{ns}/groups/etl", json={"max_concurrency": 1, "members": ["ingest"]})
    http.put(f"/v1/namespaces/{ns}/functions/rep", json={"max_concurrency": 0, "mode": "shadow"})
    g.acquire("ingest", ttl=30)
    with pytest.raises(guard.Throttled):
        g.acquire("ingest", ttl=30)  # group:etl
    g.acquire("login", ttl=30)
    g.acquire("login", ttl=30)
    with pytest.raises(guard.Throttled):
        g.acquire("login", ttl=30)  # account (ingest + 2 login = 3)
    text = http.get("/metrics").data.decode()
    m = {"namespace": ns}
    assert value(text, "guard_in_use", scope="account", **m) == 3
    assert value(text, "guard_in_use", scope="group", group="etl", **m) == 1
    assert value(text, "guard_in_use", scope="function", function="login", **m) == 2
    assert value(text, "guard_limit", scope="account", **m) == 3
    assert value(text, "guard_limit", scope="group", group="api", **m) is None  # no max set
    assert value(text, "guard_reserved", group="api", **m) == 2
    assert value(text, "guard_grants_total", function="login", **m) == 2
    assert (
        value(text, "guard_throttles_total", function="ingest", scope="group", group="etl", **m)
        == 1
    )
    # an account refusal names the function's reserving group
    assert (
        value(text, "guard_throttles_total", function="login", scope="account", group="api", **m)
        == 1
    )
    assert value(text, "guard_store_up") == 1
    assert value(text, "guard_scrape_duration_seconds") is not None
    assert value(text, "guard_override_limit", **m) is None  # none in force


def test_override_families(http: Any, ns: str, g: guard.Guard) -> None:
    g.admin.put_group("etl", max_concurrency=5, members=["ingest"])
    g.admin.override_group("etl", max_concurrency=1, seconds=60)
    g.admin.override_function("adhoc", max_concurrency=0, seconds=30)
    text = http.get("/metrics").data.decode()
    m = {"namespace": ns}
    assert value(text, "guard_limit", scope="group", group="etl", **m) == 5  # the setting
    assert value(text, "guard_override_limit", scope="group", group="etl", **m) == 1
    assert value(text, "guard_override_limit", scope="function", function="adhoc", **m) == 0
    left = value(text, "guard_override_seconds_left", scope="function", function="adhoc", **m)
    assert left is not None and 25 < left <= 30
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            assert "lease" not in "".join(s.labels)  # never a lease id


def test_shadow_expired_and_unavailable_counters(http: Any, ns: str, g: guard.Guard) -> None:
    http.put(f"/v1/namespaces/{ns}/functions/rep", json={"max_concurrency": 0, "mode": "shadow"})
    g.acquire("rep", ttl=30)
    g.acquire("short", ttl=0.05)
    http.post(f"/v1/namespaces/{ns}/leases", json={"function": "x", "unavailable": {"x": 2}})
    import time

    time.sleep(0.1)
    text = http.get("/metrics").data.decode()
    assert (
        value(text, "guard_shadow_throttles_total", function="rep", scope="function", namespace=ns)
        == 1
    )
    assert value(text, "guard_leases_expired_total", function="short", namespace=ns) == 1
    assert value(text, "guard_unavailable_total", function="x", namespace=ns) == 2


def test_store_down_is_reported_not_raised() -> None:
    from guard.server import create_app

    c = create_app({"REDIS_URL": "redis://127.0.0.1:1/0"}).test_client()
    r = c.get("/metrics")
    assert r.status_code == 200 and value(r.data.decode(), "guard_store_up") == 0


def promtool() -> str | None:
    return shutil.which("promtool") or next(
        (p for p in [os.path.join(ROOT, ".tools", "bin", "promtool")] if os.access(p, os.X_OK)),
        None,
    )


def test_promtool_check_metrics(http: Any, ns: str, g: guard.Guard) -> None:
    tool = promtool()
    if tool is None:
        pytest.skip("promtool not installed: run scripts/tools.sh")
    http.put(f"/v1/namespaces/{ns}/groups/etl", json={"max_concurrency": 1, "members": ["a"]})
    g.acquire("a", ttl=30)
    text = http.get("/metrics").data
    r = subprocess.run([tool, "check", "metrics"], input=text, capture_output=True, timeout=30)
    assert r.returncode == 0, r.stdout + r.stderr


def test_every_worker_reports_the_same(live_server: str, redis_server: Any, ns: str) -> None:
    g = guard.Guard.from_url(redis_server.url, namespace=ns, timeout=2.0)
    g.admin.set_namespace(max_concurrency=100)  # lists the namespace in guard:namespaces
    for fn in ("a", "b", "b"):
        g.acquire(fn, ttl=60)
    seen = set()
    for _ in range(24):  # 3 workers; keep-alive off, so requests spread over them
        with urllib.request.urlopen(f"{live_server}/metrics", timeout=5) as r:
            text = r.read().decode()
        s = samples(text)
        mine = {k: v for k, v in s.items() if ("namespace", ns) in k[1]}
        seen.add(tuple(sorted(mine.items())))
    g.close()
    assert len(seen) == 1
    only = dict(seen.pop())
    assert only[("guard_grants_total", (("function", "b"), ("namespace", ns)))] == 2
    with urllib.request.urlopen(f"{live_server}/metrics", timeout=5) as r:
        text = r.read().decode()
    assert "guard_http_request_duration_seconds_bucket" in text
    assert 'route="/metrics"' in text


def test_key_and_rate_scopes_without_a_series_per_key(http: Any, ns: str, g: guard.Guard) -> None:
    """Issue 14's refusal scopes are throttle (and shadow-throttle) series with the group in
    ``group``; no series, label or value names a key."""
    a = g.admin
    a.put_function("kf", key_max_concurrency=1)
    a.put_group("kg", members=["gf"], key_max_concurrency=1)
    a.put_function("rf", rate_per_second=0.01, rate_burst=1)
    a.put_function("rk", key_rate_per_second=0.01, key_rate_burst=1)
    a.put_group("rg", members=["rgf"], rate_per_second=0.01, rate_burst=1)
    a.put_group("sg", members=["sf"], key_max_concurrency=0, mode="shadow")
    key = "tenant-xyz-0042"
    for fn, scope in [
        ("kf", "key"),
        ("gf", "group-key:kg"),
        ("rf", "rate:function"),
        ("rk", "rate:key"),
        ("rgf", "rate:group:rg"),
    ]:
        g.acquire(fn, key=key, ttl=30)
        with pytest.raises(guard.Throttled) as err:
            g.acquire(fn, key=key, ttl=30)
        assert err.value.scope == scope
    assert g.acquire("sf", key=key, ttl=30).shadow_scope == "group-key:sg"
    a.set_namespace(max_concurrency=None, rate_per_second=0.01, rate_burst=1)
    g.acquire("af", ttl=30)
    with pytest.raises(guard.Throttled) as err:
        g.acquire("af", ttl=30)
    assert err.value.scope == "rate:account"
    text = http.get("/metrics").data.decode()
    m = {"namespace": ns}
    t = "guard_throttles_total"
    assert value(text, t, function="kf", scope="key", group="", **m) == 1
    assert value(text, t, function="gf", scope="group-key", group="kg", **m) == 1
    assert value(text, t, function="rf", scope="rate:function", group="", **m) == 1
    assert value(text, t, function="rk", scope="rate:key", group="", **m) == 1
    assert value(text, t, function="rgf", scope="rate:group", group="rg", **m) == 1
    assert value(text, t, function="af", scope="rate:account", group="", **m) == 1
    shadow = "guard_shadow_throttles_total"
    assert value(text, shadow, function="sf", scope="group-key", group="sg", **m) == 1
    assert key not in text
    tool = promtool()
    if tool is not None:
        r = subprocess.run(
            [tool, "check", "metrics"], input=text.encode(), capture_output=True, timeout=30
        )
        assert r.returncode == 0, r.stdout + r.stderr
