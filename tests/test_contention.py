"""Several processes x threads hammer mixed functions against one real redis-server; holders
are counted outside the SDK (see contention_worker). No level may ever exceed its limit, and
every slot comes back."""

from __future__ import annotations

import pytest
from contention_worker import hammer_processes

import guard

pytestmark = pytest.mark.slow


def test_no_level_ever_exceeds_its_limit(g: guard.Guard, redis_server, ns: str) -> None:
    limits = {"a": 8, "g:etl": 5, "f:ingest": 3, "g:api": None, "f:login": 4}
    g.admin.set_namespace(max_concurrency=limits["a"])
    g.admin.put_group("etl", max_concurrency=limits["g:etl"], members=["ingest", "transform"])
    g.admin.put_group("api", reserved=2, members=["login"])
    g.admin.put_function("ingest", max_concurrency=limits["f:ingest"])
    g.admin.put_function("login", max_concurrency=limits["f:login"])

    seen, granted, throttled = hammer_processes(redis_server.url, ns, "levels")
    assert granted > 500 and throttled > 0, (granted, throttled)  # real contention happened
    for level, limit in limits.items():
        if limit is not None:
            assert seen.get(level, 0) <= limit, (level, seen)
    # The limits were reached, so the bound above was really exercised.
    assert seen["a"] == limits["a"] or seen["g:etl"] == limits["g:etl"], seen
    u = g.admin.usage()
    assert u["account"]["in_use"] == 0  # every slot came back
    assert all(v["in_use"] == 0 for v in u["groups"].values())
