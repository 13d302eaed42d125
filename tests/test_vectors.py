"""The shared test vectors (tests/vectors/*.json, format in tests/vectors/README.md), run
against a real redis-server through the store API: `RedisStore` acquire/renew/release and
read_usage, config writes by `Admin`. The Node SDK runs the same files."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from typing import Any

import pytest
import redis
from redis_proc import RedisProcess

from guard import keys
from guard.admin import Admin
from guard.config_file import config_from_doc
from guard.errors import ConflictError, ProtocolMismatch
from guard.store import Grant, RedisStore

VECTORS = os.path.join(os.path.dirname(__file__), "vectors")
FILES = sorted(f for f in os.listdir(VECTORS) if f.endswith(".json"))
ERRORS = {"CONFLICT": ConflictError, "PROTOCOL": ProtocolMismatch}
KEYS = {"cfg": 0, "use": 1, "exp": 2, "lease": 3}


@pytest.fixture
def store(redis_server: RedisProcess) -> Iterator[RedisStore]:
    s = RedisStore.from_url(redis_server.url, timeout=2.0)
    yield s
    s.close()


class Runner:
    def __init__(self, store: RedisStore, client: redis.Redis, ns: str, name: str) -> None:
        self.store, self.client, self.ns, self.name = store, client, ns, name
        self.base: int | None = None  # first fence of the vector, minus 1

    def step(self, i: int, step: dict[str, Any]) -> None:
        where = f"{self.name} step {i} ({step['op']})"
        op, expect = step["op"], step.get("expect", {})
        if op == "config":
            Admin(self.store, self.ns).replace_config(config_from_doc(step["config"]))
        elif op == "acquire":
            self.acquire(where, step, expect)
        elif op == "renew":
            r = self.store.renew(self.ns, bytes.fromhex(step["lease"]), step.get("ttl_ms", 0))
            assert (r is not None) == expect["renewed"], where
            if r is not None and "ttl_ms" in expect:
                assert r.ttl_ms == expect["ttl_ms"], where
        elif op == "release":
            released = self.store.release(self.ns, bytes.fromhex(step["lease"]))
            assert released == expect["released"], where
        elif op == "sleep":
            time.sleep(step["ms"] / 1000)
        elif op == "hset":
            key = keys.lease_keys(self.ns)[KEYS[step["key"]]]
            self.client.hset(key, step["field"], step["value"])
        else:
            raise AssertionError(f"{where}: unknown op")
        if "usage" in step:
            self.usage(where, step["usage"])
        if "counters" in step:
            want = step["counters"]
            got = self.store.usage_fields(self.ns, list(want))
            assert {k: int(got.get(k, 0)) for k in want} == want, where

    def acquire(self, where: str, step: dict[str, Any], expect: dict[str, Any]) -> None:
        args = (self.ns, step["function"], bytes.fromhex(step["lease"]), step.get("ttl_ms", 0))
        if "error" in expect:
            with pytest.raises(ERRORS[expect["error"]]):
                self.store.acquire(*args, key=step.get("key"))
            return
        r = self.store.acquire(*args, key=step.get("key"))
        assert isinstance(r, Grant) == expect["granted"], f"{where}: {r}"
        if isinstance(r, Grant):
            if self.base is None:
                self.base = r.fence - 1
            got: dict[str, Any] = {
                "granted": True,
                "fence": r.fence - self.base,
                "ttl_ms": r.ttl_ms,
                "groups": list(r.groups),
                "shadow_scope": r.shadow_scope,
                "on_unavailable": r.on_unavailable,
            }
        else:
            got = {"granted": False, "scope": r.scope, "on_unavailable": r.on_unavailable}
            if "retry_after_ms" in expect:
                lo, hi = expect["retry_after_ms"]
                assert lo <= r.retry_after_ms <= hi, f"{where}: retry_after {r.retry_after_ms}"
        assert {k: got[k] for k in expect if k != "retry_after_ms"} == {
            k: v for k, v in expect.items() if k != "retry_after_ms"
        }, where

    def usage(self, where: str, want: dict[str, Any]) -> None:
        u = Admin(self.store, self.ns).usage()
        assert u["account"]["in_use"] == want["account"], f"{where}: account {u['account']}"
        for level in ("groups", "functions"):
            got = {n: d["in_use"] for n, d in u[level].items() if d["in_use"]}
            exp = {n: v for n, v in want[level].items() if v}
            assert got == exp, f"{where}: {level} in use"


@pytest.mark.parametrize("file", FILES, ids=[f.removesuffix(".json") for f in FILES])
def test_vector(file: str, store: RedisStore, rclient: redis.Redis, ns: str) -> None:
    with open(os.path.join(VECTORS, file), encoding="utf-8") as f:
        vector = json.load(f)
    assert vector["name"] == file.removesuffix(".json")
    run = Runner(store, rclient, ns, vector["name"])
    for i, step in enumerate(vector["steps"]):
        run.step(i, step)


def test_vectors_cover_the_contract() -> None:
    """What the suite promises to cover (tests/vectors/README.md) is there."""
    seen: set[str] = set()
    for file in FILES:
        with open(os.path.join(VECTORS, file), encoding="utf-8") as f:
            for step in json.load(f)["steps"]:
                e = step.get("expect", {})
                seen.add(step["op"])
                if "scope" in e:
                    seen.add(f"scope:{e['scope']}")
                if e.get("shadow_scope"):
                    seen.add(f"shadow:{e['shadow_scope']}")
                if "error" in e:
                    seen.add(f"error:{e['error']}")
    want = {
        "scope:function",
        "scope:group:g",
        "scope:account",
        "shadow:function",
        "shadow:group:g",
        "scope:key",
        "scope:group-key:grp",
        "shadow:key",
        "scope:rate:key",
        "scope:rate:function",
        "scope:rate:account",
        "shadow:rate:group:grp",
        "error:CONFLICT",
        "error:PROTOCOL",
        "sleep",
        "renew",
    }
    assert want <= seen, want - seen


@pytest.mark.parametrize("file", FILES, ids=[f.removesuffix(".json") for f in FILES])
def test_vector_on_the_embedded_fallback_store(file: str) -> None:
    """fakeredis on purpose: it is `guard serve`'s own store on machines without
    redis-server (guard/server/embedded.py), where the scripts run on lupa with
    struct_compat.lua's `struct`. The same vectors must hold there."""
    import fakeredis  # a dev dependency: never skipped

    client = fakeredis.FakeRedis()
    store = RedisStore(client)
    try:
        with open(os.path.join(VECTORS, file), encoding="utf-8") as f:
            vector = json.load(f)
        run = Runner(store, client, "vectors", vector["name"])
        for i, step in enumerate(vector["steps"]):
            run.step(i, step)
    finally:
        store.close()
