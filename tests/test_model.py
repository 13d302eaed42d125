"""A hypothesis state machine: acquire (with or without a key) / release / renew / renew to a
shorter TTL / expire / retried acquire by lease id / set-limit / set-key-limit against a real
redis-server, checked step by step
against a plain Python model of the admission rule (`guard.model.admits`, the rule of
docs/guarantees.md written out in Python). Two more machines check the waiting queues'
tickets: one function's, and two functions' in a group (the group's queue); another keys and
rates (GCRA) on a controlled server clock."""

from __future__ import annotations

import itertools
import time
from dataclasses import replace
from typing import Any

import pytest
import redis
from fake_clock import set_clock, use_fake_clock
from gcra_model import Bucket, decide
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    consumes,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

import guard
from guard import keys, scripts, wire
from guard.admin import Admin
from guard.model import Config, Function, Group
from guard.store import Grant, RedisStore

pytestmark = pytest.mark.slow

FUNCTIONS = ["f1", "f2", "f3", "f4"]
KEYS = [None, "k1", "k2"]
LIMIT = st.one_of(st.none(), st.integers(0, 3))
_ns = itertools.count()


def drop_namespace(r: redis.Redis, ns: str) -> None:
    """A machine's teardown: its namespace's keys and its entry in the set of namespaces go."""
    ks = list(r.scan_iter(match=f"guard:{{{ns}}}:*"))
    if ks:
        r.delete(*ks)
    r.srem(keys.NAMESPACES, ns)


def run_machine(machine: Any, url: str, *, examples: int, steps: int) -> None:
    """Run a state machine against the redis-server at `url`: `examples` runs of up to `steps`
    steps, no deadline, no health checks."""
    machine.url = url
    run_state_machine_as_test(
        machine,
        settings=settings(
            max_examples=examples,
            stateful_step_count=steps,
            deadline=None,
            suppress_health_check=list(HealthCheck),
        ),
    )


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
        # lease id -> the use-hash key fields its grant counted (k:<fn>|<key>, kg:<g>|<key>)
        self.key_counts: dict[str, list[str]] = {}
        self.keys: dict[str, str | None] = {}  # lease id -> the key it was acquired with
        self.fences: dict[str, int] = {}  # lease id -> fence of its current grant

    def teardown(self) -> None:
        drop_namespace(self.r, self.ns)
        self.g.close()
        self.r.close()

    def in_use(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for lid, (fn, groups) in self.live.items():
            for k in ("a", f"f:{fn}", *(f"g:{g}" for g in groups), *self.key_counts[lid]):
                counts[k] = counts.get(k, 0) + 1
        return counts

    def counted(self, fn: str, key: str | None) -> list[str]:
        """The key fields a grant of `fn` with `key` counts under the current config."""
        if key is None:
            return []
        out = [wire.key_field(fn, key)] if self.cfg.functions.get(fn, Function()).keyed else []
        own = self.cfg.groups_of(fn)
        return out + [wire.group_key_field(g, key) for g in own if self.cfg.groups[g].keyed]

    @rule(target=leases, fn=st.sampled_from(FUNCTIONS), key=st.sampled_from(KEYS))
    def acquire(self, fn: str, key: str | None) -> guard.Lease | None:
        ok, scope = guard.model.admits(self.cfg, fn, self.in_use(), key)
        try:
            lease = self.g.acquire(fn, ttl=60, key=key)
        except guard.Throttled as t:
            assert not ok, f"refused by {t.scope}, model grants"
            assert t.scope == scope
            return None
        assert ok, f"granted, model refuses by {scope}"
        assert lease.shadow_scope == scope
        assert set(lease.groups) == set(self.cfg.groups_of(fn))
        assert lease.fence > max(self.fences.values(), default=0)  # fences only increase
        self.live[lease.lease_id] = (fn, lease.groups)
        self.key_counts[lease.lease_id] = self.counted(fn, key)
        self.keys[lease.lease_id] = key
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
        fn, key = lease.function, self.keys.get(lease.lease_id)
        if lease.lease_id in self.live:
            again = self.g.acquire(fn, ttl=60, lease_id=lease.lease_id, key=key)
            assert again.fence == self.fences[lease.lease_id]
            return
        ok, scope = guard.model.admits(self.cfg, fn, self.in_use(), key)
        try:
            again = self.g.acquire(fn, ttl=60, lease_id=lease.lease_id, key=key)
        except guard.Throttled as t:
            assert not ok, f"refused by {t.scope}, model grants"
            assert t.scope == scope
            return
        assert ok, f"granted, model refuses by {scope}"
        sec, _ = self.r.time()
        assert again.expires_at > sec  # live when returned
        assert again.fence > max(self.fences.values(), default=0)
        self.live[lease.lease_id] = (fn, again.groups)
        self.key_counts[lease.lease_id] = self.counted(fn, key)
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

    @rule(
        which=st.sampled_from(["g1", "g2", "f1", "f2"]),
        cap=LIMIT,
        k1=st.none() | st.integers(0, 3),
    )
    def set_key_limit(self, which: str, cap: int | None, k1: int | None) -> None:
        """A key cap for every key (or none) and an override for k1 (or none)."""
        over = {} if k1 is None else {"k1": k1}
        if which.startswith("g"):
            grp = replace(self.cfg.groups[which], key_max_concurrency=cap, key_overrides=over)
            new = replace(self.cfg, groups={**self.cfg.groups, which: grp})
        else:
            f = replace(
                self.cfg.functions.get(which, Function()),
                key_max_concurrency=cap,
                key_overrides=over,
            )
            new = replace(self.cfg, functions={**self.cfg.functions, which: f})
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
        # the key counters: exactly the model's, none left at 0
        raw = self.r.hgetall(keys.lease_keys(self.ns)[1])
        keyed = {k.decode(): int(v) for k, v in raw.items() if k.startswith((b"k:", b"kg:"))}
        assert keyed == {k: n for k, n in counts.items() if k.startswith(("k:", "kg:"))}


def test_admission_matches_the_model(redis_server) -> None:
    run_machine(AdmissionMachine, redis_server.url, examples=60, steps=40)


class TicketMachine(RuleBasedStateMachine):
    """The waiting queue (issue 18) against a model: an ordered list of live tickets and the
    holders of one function. A caller is granted when fewer live tickets are ahead of it (all
    of them, without a ticket) than free slots; a refused caller that waits queues at the
    end; a grant or a given-up wait drops the ticket; a lapsed ticket is skipped."""

    url = ""
    ids = Bundle("ids")

    def __init__(self) -> None:
        super().__init__()
        self.ns = f"tm{next(_ns)}"
        self.g = guard.Guard.from_url(self.url, namespace=self.ns, timeout=5)
        self.st = self.g.backend
        assert isinstance(self.st, guard.store.RedisStore)
        self.r = redis.Redis.from_url(self.url)
        self.max = 1
        self.g.admin.put_function("f", max_concurrency=self.max)
        self.queue: list[bytes] = []  # live tickets, oldest first
        self.holders: set[bytes] = set()
        self.timed_out = 0
        self.made = 0

    def teardown(self) -> None:
        drop_namespace(self.r, self.ns)
        self.g.close()
        self.r.close()

    def admits(self, lid: bytes) -> bool:
        free = self.max - len(self.holders)
        ahead = self.queue.index(lid) if lid in self.queue else len(self.queue)
        return ahead < free

    @rule(target=ids)
    def new_id(self) -> bytes:
        self.made += 1  # deterministic (hypothesis replays steps): no os.urandom here
        return self.made.to_bytes(16, "big")

    @rule(lid=ids, wait=st.booleans())
    def acquire(self, lid: bytes, wait: bool) -> None:
        if lid in self.holders:
            return  # a retry of a held lease: covered by AdmissionMachine
        ok = self.admits(lid)
        r = self.st.acquire(self.ns, "f", lid, 60_000, wait_ms=60_000 if wait else 0)
        assert isinstance(r, guard.store.Grant) is ok, (ok, r, self.queue, self.holders)
        if ok:
            self.holders.add(lid)
            if lid in self.queue:
                self.queue.remove(lid)
        else:
            assert r.scope == "function"
            if wait and lid not in self.queue:
                self.queue.append(lid)

    @rule(lid=ids)
    def give_up(self, lid: bytes) -> None:
        """The last try of a wait that ran out."""
        if lid in self.holders:
            return
        ok = self.admits(lid)
        r = self.st.acquire(self.ns, "f", lid, 60_000, 0, last=True)
        assert isinstance(r, guard.store.Grant) is ok
        if lid in self.queue:
            self.queue.remove(lid)
        if ok:
            self.holders.add(lid)
        else:
            self.timed_out += 1

    @rule(lid=ids)
    def release(self, lid: bytes) -> None:
        assert self.st.release(self.ns, lid) is (lid in self.holders)
        self.holders.discard(lid)

    @rule(lid=ids)
    def lapse(self, lid: bytes) -> None:
        """The ticket's deadline passes (its waiter stopped retrying)."""
        if lid in self.queue:
            self.r.zadd(keys.queue_deadline_key(self.ns, "f"), {lid: 1})
            self.queue.remove(lid)

    @rule(value=st.integers(0, 3))
    def set_max(self, value: int) -> None:
        self.g.admin.put_function("f", max_concurrency=value)
        self.max = value

    @invariant()
    def queue_matches_model(self) -> None:
        sec, usec = self.r.time()
        now = sec * 1000 + usec // 1000
        live = {m for m, s in self.r.zrange(keys.queue_deadline_key(self.ns, "f"), 0, -1,
                                            withscores=True) if s > now}  # fmt: skip
        order = [m for m in self.r.zrange(keys.queue_key(self.ns, "f"), 0, -1) if m in live]
        assert order == self.queue
        use = keys.lease_keys(self.ns)[1]
        assert int(self.r.hget(use, "f:f") or 0) == len(self.holders)
        assert int(self.r.hget(use, "o:f") or 0) == self.timed_out


def test_tickets_match_the_model(redis_server, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(scripts.CONSTANTS, "TICKET_MS", 600_000)  # lapse only by `lapse`
    run_machine(TicketMachine, redis_server.url, examples=40, steps=40)


# -- keys and rates: GCRA against an independent model, on a controlled server clock ----------

T0 = 1_900_000_000_000_000  # fake server time (µs), ahead of the real clock: PXAT never fires
RATES = [0.5, 1, 2, 4, 5, 8, 10, 20, 25, 50, 100, 1000]  # whole µs intervals: exact doubles
_RB = st.tuples(st.sampled_from(RATES), st.none() | st.integers(1, 4))
RATE = st.one_of(_RB, _RB, st.none())  # a level's (rate, burst): set two times in three
SEEN: dict[str, int] = {}  # outcomes the machine produced (the test checks it saw each kind)


class RateMachine(RuleBasedStateMachine):
    """Random arrival sequences (time steps of 0-2.5 s or 0-2 ms on a fake server clock) of
    keyed and unkeyed acquires, holds, releases and retried lease ids, against two models: the
    admission rule's concurrency part with keys (`guard.model.admits`) and, when it admits, a
    token bucket per rate level in exact arithmetic (tests/gcra_model.py). Every decision,
    scope, shadow scope and rate retry_after must match."""

    url = ""

    def __init__(self) -> None:
        super().__init__()
        self.ns = f"rate{next(_ns)}"
        self.r = redis.Redis.from_url(self.url)
        self.store = RedisStore.from_url(self.url, timeout=5)
        self.now = T0
        set_clock(self.r, self.ns, self.now)
        self.held: dict[bytes, tuple[str, str | None, int]] = {}  # lease id -> fn, key, fence
        self.made = 0

    def teardown(self) -> None:
        drop_namespace(self.r, self.ns)
        self.store.close()
        self.r.close()

    @initialize(
        ns_rate=RATE,
        g_rate=RATE,
        g_shadow=st.booleans(),
        f_rate=RATE,
        k_rate=RATE,
        f_max=st.none() | st.integers(0, 3),
        k_max=st.none() | st.integers(0, 2),
    )
    def configure(self, ns_rate, g_rate, g_shadow, f_rate, k_rate, f_max, k_max) -> None:  # type: ignore[no-untyped-def]
        self.buckets = {
            n: Bucket(*x) if x else None for n, x in (("a", ns_rate), ("g", g_rate), ("f", f_rate))
        }
        self.k_buckets: dict[str, Bucket] = {}
        self.k_rate, self.g_shadow = k_rate, g_shadow
        (ns_r, ns_b), (g_r, g_b) = ns_rate or (None, None), g_rate or (None, None)
        (f_r, f_b), (k_r, k_b) = f_rate or (None, None), k_rate or (None, None)
        self.cfg = Config(
            rate_per_second=ns_r,
            rate_burst=ns_b,
            groups={
                "grp": Group.build(
                    members=["f1"], rate_per_second=g_r, rate_burst=g_b,
                    mode="shadow" if g_shadow else "enforce",
                )
            },
            functions={
                "f1": Function.build(
                    max_concurrency=f_max, key_max_concurrency=k_max,
                    rate_per_second=f_r, rate_burst=f_b,
                    key_rate_per_second=k_r, key_rate_burst=k_b,
                )
            },
        )  # fmt: skip
        self.cfg.check()
        Admin(self.store, self.ns).replace_config(self.cfg)

    def levels(self, fn: str, key: str | None) -> list[tuple[str, Bucket, bool]]:
        out = []
        if self.buckets["a"]:
            out.append(("rate:account", self.buckets["a"], False))
        if fn == "f1":
            if self.buckets["g"]:
                out.append(("rate:group:grp", self.buckets["g"], self.g_shadow))
            if self.buckets["f"]:
                out.append(("rate:function", self.buckets["f"], False))
            if key is not None and self.k_rate:
                kb = self.k_buckets.setdefault(key, Bucket(*self.k_rate))
                out.append(("rate:key", kb, False))
        return out

    def in_use(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        f1 = self.cfg.functions["f1"]
        for fn, key, _ in self.held.values():
            fields = ["a", f"f:{fn}"] + (["g:grp"] if fn == "f1" else [])
            if fn == "f1" and key is not None and f1.keyed:
                fields.append(wire.key_field(fn, key))
            for k in fields:
                counts[k] = counts.get(k, 0) + 1
        return counts

    @rule(dt=st.integers(0, 2_500_000) | st.integers(0, 2000))
    def advance(self, dt: int) -> None:
        self.now += dt
        set_clock(self.r, self.ns, self.now)

    @rule(fn=st.sampled_from(["f1", "f2"]), key=st.sampled_from([None, "k1", "k2"]),
          hold=st.booleans())  # fmt: skip
    def acquire(self, fn: str, key: str | None, hold: bool) -> None:
        self.made += 1
        lid = self.made.to_bytes(16, "big")
        ok, scope = guard.model.admits(self.cfg, fn, self.in_use(), key)
        retry = None
        if ok:  # the rate levels are checked only when every concurrency level has room
            ok, scope, retry = decide(self.levels(fn, key), self.now)
        r = self.store.acquire(self.ns, fn, lid, 60_000, key=key)
        outcome = (scope or "grant") if ok else f"refused {scope}"
        SEEN[outcome] = SEEN.get(outcome, 0) + 1
        if ok:
            assert isinstance(r, Grant), (r, scope)
            assert r.shadow_scope == (scope or "")
            if hold:
                self.held[lid] = (fn, key, r.fence)
            else:
                assert self.store.release(self.ns, lid)
        else:
            assert not isinstance(r, Grant), f"granted, model refuses by {scope}"
            assert r.scope == scope
            if retry is not None:
                assert r.retry_after_ms == retry

    @rule()
    def retry_held(self) -> None:
        """A retried acquire of a held lease id: the same lease, no token, even when a level
        would refuse now."""
        if self.held:
            lid = max(self.held)
            fn, key, fence = self.held[lid]
            r = self.store.acquire(self.ns, fn, lid, 60_000, key=key)
            assert isinstance(r, Grant) and r.fence == fence, r

    @rule()
    def release_one(self) -> None:
        if self.held:
            lid = min(self.held)
            assert self.store.release(self.ns, lid)
            del self.held[lid]

    @invariant()
    def key_counters_match(self) -> None:
        raw = self.r.hgetall(keys.lease_keys(self.ns)[1])
        keyed = {k.decode(): int(v) for k, v in raw.items() if k.startswith(b"k:")}
        assert keyed == {k: n for k, n in self.in_use().items() if k.startswith("k:")}


def test_keys_and_rates_match_the_models(redis_server, monkeypatch: pytest.MonkeyPatch) -> None:
    use_fake_clock(monkeypatch)
    run_machine(RateMachine, redis_server.url, examples=80, steps=30)
    # and scripted runs through the same machine (its models check every step), so that every
    # kind of decision is compared whatever the random runs drew
    none: dict[str, Any] = dict.fromkeys(
        ("ns_rate", "g_rate", "f_rate", "k_rate", "f_max", "k_max")
    )
    one = (1, 1)
    for cfg, steps in [
        ({"f_rate": one, "k_max": 1}, [("f1", "k1"), ("f1", "k1"), ("f1", "k2")]),  # key, rate:f
        ({"ns_rate": one}, [("f2", None), ("f2", None)]),  # rate:account
        ({"k_rate": one}, [("f1", "k1"), ("f1", "k1"), ("f1", "k2")]),  # rate:key
        ({"g_rate": one}, [("f1", None), ("f1", None)]),  # rate:group
        ({"g_rate": one, "g_shadow": True}, [("f1", None), ("f1", None)]),  # shadow rate:group
        ({"f_max": 0}, [("f1", None)]),  # function
    ]:
        m = RateMachine()
        try:
            m.configure(**{**none, "g_shadow": False, **cfg})
            for fn, key in steps:
                m.acquire(fn, key, hold=True)
        finally:
            m.teardown()
    want = {"grant", "rate:group:grp", "refused key", "refused function"}
    want |= {f"refused rate:{s}" for s in ("account", "group:grp", "function", "key")}
    assert want <= set(SEEN), sorted(SEEN.items())


GIDS = st.sampled_from([i.to_bytes(16, "big") for i in range(1, 5)])  # few: they meet


class GroupTicketMachine(RuleBasedStateMachine):
    """The waiting queues of two functions in a group against a model. Order is by when a
    waiter first queued (its function ticket). A caller is refused by its function's limit,
    then the group's limit, then its function's queue (fewer live tickets ahead of it than
    free slots; one slot without a limit of its own), then the group's queue (fewer tickets
    ahead than the group's free slots). A waiting refusal queues it in its function's queue,
    and in the group's queue when the group refused it (at its first-queued place), out of it
    otherwise. A grant or a given-up wait drops both tickets; a lapse drops both."""

    url = ""

    def __init__(self) -> None:
        super().__init__()
        self.ns = f"gt{next(_ns)}"
        self.g = guard.Guard.from_url(self.url, namespace=self.ns, timeout=5)
        self.st = self.g.backend
        assert isinstance(self.st, guard.store.RedisStore)
        self.r = redis.Redis.from_url(self.url)
        self.fmax: dict[str, int | None] = {"a": 2, "b": None}
        self.gmax = 2
        self.g.admin.put_function("a", max_concurrency=2)
        self.g.admin.put_function("b")
        self.g.admin.put_group("g", max_concurrency=self.gmax, members=["a", "b"])
        self.fq: dict[str, list[bytes]] = {"a": [], "b": []}  # live tickets, oldest first
        self.gq: list[bytes] = []
        self.first: dict[bytes, int] = {}  # when a ticket first queued (model clock)
        self.clock = 0
        self.holders: dict[bytes, str] = {}

    def teardown(self) -> None:
        drop_namespace(self.r, self.ns)
        self.g.close()
        self.r.close()

    def decide(self, lid: bytes, fn: str) -> str:
        """ "" for a grant, else the refusing scope."""
        in_f = sum(1 for f in self.holders.values() if f == fn)
        in_g = len(self.holders)
        fmax = self.fmax[fn]
        if fmax is not None and in_f >= fmax:
            return "function"
        if in_g >= self.gmax:
            return "group:g"
        q = self.fq[fn]
        free = (fmax if fmax is not None else in_f + 1) - in_f
        if (q.index(lid) if lid in q else len(q)) >= free:
            return "function"
        if (self.gq.index(lid) if lid in self.gq else len(self.gq)) >= self.gmax - in_g:
            return "group:g"
        return ""

    def drop(self, lid: bytes) -> None:
        for q in (*self.fq.values(), self.gq):
            if lid in q:
                q.remove(lid)

    @rule(lid=GIDS, fn=st.sampled_from(["a", "b"]), wait=st.booleans())
    def acquire(self, lid: bytes, fn: str, wait: bool) -> None:
        if lid in self.holders or any(lid in q for f, q in self.fq.items() if f != fn):
            return  # a lease id waits for one function
        want = self.decide(lid, fn)
        r = self.st.acquire(self.ns, fn, lid, 60_000, wait_ms=60_000 if wait else 0)
        assert isinstance(r, guard.store.Grant) is (want == ""), (want, r, self.fq, self.gq)
        if want == "":
            self.holders[lid] = fn
            self.drop(lid)
            return
        assert isinstance(r, guard.store.Refusal) and r.scope == want
        if not wait:
            return
        if lid not in self.fq[fn]:
            self.clock += 1
            self.first[lid] = self.clock
            self.fq[fn].append(lid)
        if want == "group:g":
            if lid not in self.gq:
                self.gq.append(lid)
                self.gq.sort(key=self.first.__getitem__)
        elif lid in self.gq:
            self.gq.remove(lid)

    @rule(lid=GIDS, fn=st.sampled_from(["a", "b"]))
    def give_up(self, lid: bytes, fn: str) -> None:
        if lid in self.holders or any(lid in q for f, q in self.fq.items() if f != fn):
            return
        want = self.decide(lid, fn)
        r = self.st.acquire(self.ns, fn, lid, 60_000, 0, last=True)
        assert isinstance(r, guard.store.Grant) is (want == "")
        self.drop(lid)
        if want == "":
            self.holders[lid] = fn

    @rule(lid=GIDS)
    def release(self, lid: bytes) -> None:
        assert self.st.release(self.ns, lid) is (lid in self.holders)
        self.holders.pop(lid, None)

    @rule(lid=GIDS)
    def lapse(self, lid: bytes) -> None:
        """The ticket's deadline passes (its waiter stopped retrying)."""
        for fn, q in self.fq.items():
            if lid in q:
                self.r.zadd(keys.queue_deadline_key(self.ns, fn), {lid: 1})
        if lid in self.gq:
            self.r.zadd(keys.group_queue_deadline_key(self.ns, "g"), {lid: 1})
        self.drop(lid)

    @rule(value=st.integers(0, 3))
    def set_group_max(self, value: int) -> None:
        self.g.admin.put_group("g", max_concurrency=value, members=["a", "b"])
        self.gmax = value

    @rule(value=st.one_of(st.none(), st.integers(0, 3)))
    def set_a_max(self, value: int | None) -> None:
        self.g.admin.put_function("a", max_concurrency=value)
        self.fmax["a"] = value

    def live(self, qkey: str, dkey: str) -> list[bytes]:
        sec, usec = self.r.time()
        now = sec * 1000 + usec // 1000
        alive = {m for m, s in self.r.zrange(dkey, 0, -1, withscores=True) if s > now}
        return [m for m in self.r.zrange(qkey, 0, -1) if m in alive]

    @invariant()
    def queues_match_model(self) -> None:
        for fn, q in self.fq.items():
            k, d = keys.queue_key(self.ns, fn), keys.queue_deadline_key(self.ns, fn)
            assert self.live(k, d) == q
        k, d = keys.group_queue_key(self.ns, "g"), keys.group_queue_deadline_key(self.ns, "g")
        assert self.live(k, d) == self.gq
        use = keys.lease_keys(self.ns)[1]
        assert int(self.r.hget(use, "g:g") or 0) == len(self.holders)


def test_group_tickets_match_the_model(redis_server, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(scripts.CONSTANTS, "TICKET_MS", 600_000)  # lapse only by `lapse`
    run_machine(GroupTicketMachine, redis_server.url, examples=150, steps=60)
