"""A hypothesis state machine: acquire / release / renew / renew to a shorter TTL / expire /
retried acquire by lease id / set-limit against a real redis-server, checked step by step
against a plain Python model of the admission rule (`guard.model.admits`, the rule of
docs/guarantees.md written out in Python)."""

from __future__ import annotations

import itertools
import time
from dataclasses import replace

import pytest
import redis
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    consumes,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

import guard
from guard import keys, wire
from guard.model import Config, Function, Group

pytestmark = pytest.mark.slow

FUNCTIONS = ["f1", "f2", "f3", "f4"]
LIMIT = st.one_of(st.none(), st.integers(0, 3))
_ns = itertools.count()


class AdmissionMachine(RuleBasedStateMachine):
    url = ""
    leases = Bundle("leases")

    def __init__(self) -> None:
        super().__init__()
        self.ns = f"sm{next(_ns)}"
        self.g = guard.Guard.from_url(self.url, namespace=self.ns, timeout=5)
        self.r = redis.Redis.from_url(self.url)
        self.cfg = Config(
            max_concurrency=4,
            groups={
                "g1": Group(max_concurrency=2, members=("f1", "f2")),
                "g2": Group(reserved=1, members=("f2", "f3")),
            },
        )
        self.g.admin.replace_config(self.cfg)
        self.live: dict[str, tuple[str, tuple[str, ...]]] = {}
        self.fences: dict[str, int] = {}  # lease id -> fence of its current grant

    def teardown(self) -> None:
        ks = list(self.r.scan_iter(match=f"guard:{{{self.ns}}}:*"))
        if ks:
            self.r.delete(*ks)
        self.r.srem(keys.NAMESPACES, self.ns)
        self.g.close()
        self.r.close()

    def in_use(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for fn, groups in self.live.values():
            for k in ("a", f"f:{fn}", *(f"g:{g}" for g in groups)):
                counts[k] = counts.get(k, 0) + 1
        return counts

    @rule(target=leases, fn=st.sampled_from(FUNCTIONS))
    def acquire(self, fn: str) -> guard.Lease | None:
        ok, scope = guard.model.admits(self.cfg, fn, self.in_use())
        try:
            lease = self.g.acquire(fn, ttl=60)
        except guard.Throttled as t:
            assert not ok, f"refused by {t.scope}, model grants"
            assert t.scope == scope
            return None
        assert ok, f"granted, model refuses by {scope}"
        assert lease.shadow_scope == scope
        assert set(lease.groups) == set(self.cfg.groups_of(fn))
        assert lease.fence > max(self.fences.values(), default=0)  # fences only increase
        self.live[lease.lease_id] = (fn, lease.groups)
        self.fences[lease.lease_id] = lease.fence
        return lease

    @rule(lease=consumes(leases))
    def release(self, lease: guard.Lease | None) -> None:
        if lease is not None:
            held = lease.lease_id in self.live
            assert lease.release() is held
            self.live.pop(lease.lease_id, None)

    @rule(lease=leases)
    def renew(self, lease: guard.Lease | None) -> None:
        if lease is not None and lease.held:
            assert lease.renew() is (lease.lease_id in self.live)

    @rule(lease=leases)
    def renew_shorter(self, lease: guard.Lease | None) -> None:
        """Renew a 60 s lease to a few milliseconds and let that pass for real: the slot
        must come back at the new expiry (the script's own reap bound, nothing forced)."""
        if lease is None or lease.lease_id not in self.live:
            return
        assert lease.renew(ttl=0.005)
        for _ in range(200):
            sec, usec = self.r.time()
            if sec * 1000 + usec // 1000 > lease.expires_at * 1000:
                break
            time.sleep(0.002)
        del self.live[lease.lease_id]

    @rule(lease=leases)
    def retry_acquire(self, lease: guard.Lease | None) -> None:
        """An acquire retried with a lease id already used: the same lease while it is
        held; once released or expired, a new admission that the model decides."""
        if lease is None:
            return
        fn = lease.function
        if lease.lease_id in self.live:
            again = self.g.acquire(fn, ttl=60, lease_id=lease.lease_id)
            assert again.fence == self.fences[lease.lease_id]
            return
        ok, scope = guard.model.admits(self.cfg, fn, self.in_use())
        try:
            again = self.g.acquire(fn, ttl=60, lease_id=lease.lease_id)
        except guard.Throttled as t:
            assert not ok, f"refused by {t.scope}, model grants"
            assert t.scope == scope
            return
        assert ok, f"granted, model refuses by {scope}"
        sec, _ = self.r.time()
        assert again.expires_at > sec  # live when returned
        assert again.fence > max(self.fences.values(), default=0)
        self.live[lease.lease_id] = (fn, again.groups)
        self.fences[lease.lease_id] = again.fence
        lease.held, lease.lost, lease.expires_at = True, False, again.expires_at  # same handle

    @rule(lease=leases)
    def expire(self, lease: guard.Lease | None) -> None:
        """Time passes for one lease: its expiry moves into the past (and the reap bound
        with it, as it would for a lease granted with that expiry)."""
        if lease is None or lease.lease_id not in self.live:
            return
        _, use_k, exp_k, lease_k = keys.lease_keys(self.ns)
        raw = bytes.fromhex(lease.lease_id)
        meta = self.r.hget(lease_k, raw)
        head = wire.META
        _, granted, fence, ttl, n = head.unpack_from(meta)
        self.r.hset(lease_k, raw, head.pack(1.0, granted, fence, ttl, n) + meta[head.size :])
        self.r.zadd(exp_k, {raw: 1})
        self.r.hset(use_k, wire.REAP, 1)
        del self.live[lease.lease_id]

    @rule(
        which=st.sampled_from(["ns", "g1", "g2", "f1", "f2", "f3"]),
        value=LIMIT,
        reserved=st.integers(0, 3),
        shadow=st.booleans(),
    )
    def set_limit(self, which: str, value: int | None, reserved: int, shadow: bool) -> None:
        mode = "shadow" if shadow else "enforce"
        if which == "ns":
            new = replace(self.cfg, max_concurrency=value)
        elif which.startswith("g"):
            old = self.cfg.groups[which]
            grp = replace(old, max_concurrency=value, reserved=reserved if which == "g2" else 0)
            if grp.max_concurrency is not None and grp.reserved > grp.max_concurrency:
                grp = replace(grp, reserved=grp.max_concurrency)
            new = replace(self.cfg, groups={**self.cfg.groups, which: replace(grp, mode=mode)})
        else:
            f = Function(max_concurrency=value, mode=mode)
            new = replace(self.cfg, functions={**self.cfg.functions, which: f})
        try:
            new.check()
        except guard.ConflictError:
            with pytest.raises(guard.ConflictError):
                self.g.admin.replace_config(new)
            return
        self.g.admin.replace_config(new)
        self.cfg = new

    @precondition(lambda self: True)
    @invariant()
    def usage_matches_model(self) -> None:
        u = self.g.admin.usage()
        counts = self.in_use()
        assert u["account"]["in_use"] == counts.get("a", 0)
        for name, v in u["groups"].items():
            assert v["in_use"] == counts.get(f"g:{name}", 0), name
        for fn in FUNCTIONS:
            got = u["functions"].get(fn, {"in_use": 0})["in_use"]
            assert got == counts.get(f"f:{fn}", 0), fn


def test_admission_matches_the_model(redis_server) -> None:
    AdmissionMachine.url = redis_server.url
    run_state_machine_as_test(
        AdmissionMachine,
        settings=settings(
            max_examples=60,
            stateful_step_count=40,
            deadline=None,
            suppress_health_check=list(HealthCheck),
        ),
    )
