"""Keys and rates in the one atomic admission (issue 14), on a real redis-server: per-key
caps at a function and a group under the total, rate levels (GCRA) at the account, a group,
the function and a key — a grant takes one token at every level it passed, a refusal and a
retried lease id none, a rate refusal's retry_after is exact — the key's counters follow
release, renew, expiry and reap, shadow mode counts the new scopes, and an idle key leaves
no state."""

from __future__ import annotations

import time
from typing import Any

import pytest
import redis

import guard
from guard import keys, wire
from guard.model import Config, Function, Group

T0 = 1_900_000_000_000_000  # fake server time (µs), ahead of the real clock: PXAT never fires


def use(r: redis.Redis, ns: str) -> dict[str, int]:
    raw = r.hgetall(keys.lease_keys(ns)[1])
    return {k.decode(): int(v) for k, v in raw.items() if k and k[:1] in (b"k", b"f", b"g", b"a")}


def key_fields(r: redis.Redis, ns: str) -> dict[str, int]:
    return {k: v for k, v in use(r, ns).items() if k.startswith(("k:", "kg:"))}


def throttled(g: guard.Guard, fn: str, **kw: Any) -> guard.Throttled:
    with pytest.raises(guard.Throttled) as e:
        g.acquire(fn, **kw)
    return e.value


# -- per-key concurrency ---------------------------------------------------------------------


def test_key_caps_at_function_and_group_under_the_total(g: guard.Guard, rclient, ns) -> None:
    g.admin.replace_config(
        Config(
            groups={"tenants": Group.build(members=["f", "h"], key_max_concurrency=3)},
            functions={
                "f": Function.build(
                    max_concurrency=4, key_max_concurrency=1, key_overrides={"big": 3}
                )
            },
        )
    )
    a = g.acquire("f", key="a")
    assert throttled(g, "f", key="a").scope == "key"
    assert g.acquire("f", key="b").held  # another key has its own cap
    big = [g.acquire("f", key="big") for _ in range(2)]  # its override: 3; total 4 now
    t = throttled(g, "f", key="big")
    assert t.scope == "function"  # the total caps first
    assert key_fields(rclient, ns) == {
        "k:f|a": 1, "k:f|b": 1, "k:f|big": 2, "kg:tenants|a": 1, "kg:tenants|b": 1,
        "kg:tenants|big": 2,
    }  # fmt: skip
    a.release()
    big.append(g.acquire("f", key="big"))
    assert throttled(g, "h", key="big").scope == "group-key:tenants"  # 3 of big in the group
    assert g.acquire("h", key="c").held  # h has no key cap of its own; the group's holds
    assert g.acquire("h").held  # no key: no key level
    for lease in big:
        lease.release()
    assert key_fields(rclient, ns) == {"k:f|b": 1, "kg:tenants|b": 1, "kg:tenants|c": 1}
    assert int(rclient.hget(keys.lease_keys(ns)[1], "t:f|key")) == 1
    assert int(rclient.hget(keys.lease_keys(ns)[1], "t:h|group-key:tenants")) == 1


def test_key_cap_zero_and_override_zero_refuse(g: guard.Guard) -> None:
    g.admin.put_function("f", key_max_concurrency=2, key_overrides={"banned": 0})
    assert throttled(g, "f", key="banned").scope == "key"
    assert g.acquire("f", key="ok").held


def test_expiry_renew_and_reap_keep_key_counters_right(g: guard.Guard, rclient, ns) -> None:
    g.admin.replace_config(
        Config(
            groups={"grp": Group.build(members=["f"], key_max_concurrency=1)},
            functions={"f": Function.build(key_max_concurrency=1)},
        )
    )
    short = g.acquire("f", key="k", ttl=0.2)
    assert short.renew(ttl=0.2)  # the renewed meta keeps its key part
    meta = rclient.hget(keys.lease_keys(ns)[3], bytes.fromhex(short.lease_id))
    assert wire.LeaseInfo.unpack(b"x" * 16, meta).key == "k"
    assert throttled(g, "f", key="k").scope == "key"
    time.sleep(0.3)
    again = g.acquire("f", key="k")  # the expired lease was reaped: the key is free again
    assert key_fields(rclient, ns) == {"k:f|k": 1, "kg:grp|k": 1}
    assert int(rclient.hget(keys.lease_keys(ns)[1], "x:f")) == 1
    assert again.release() and key_fields(rclient, ns) == {}
    assert [lease.key for lease in g.admin.leases()] == []


def test_release_of_an_expired_keyed_lease_and_a_retry(g: guard.Guard, rclient, ns) -> None:
    g.admin.put_function("f", key_max_concurrency=1)
    lid = "0123456789abcdef0123456789abcdef"
    a = g.acquire("f", key="k", lease_id=lid)
    again = g.acquire("f", key="k", lease_id=lid)  # a retry: the same lease, counted once
    assert again.fence == a.fence and key_fields(rclient, ns) == {"k:f|k": 1}
    short = g.acquire("f", key="z", ttl=0.05)
    time.sleep(0.1)
    assert short.release() is False  # expired: reaped by the release itself
    assert key_fields(rclient, ns) == {"k:f|k": 1}
    assert [lease.key for lease in g.admin.leases()] == ["k"]


def test_a_key_only_counts_where_a_key_limit_applies(g: guard.Guard, rclient, ns) -> None:
    g.admin.put_function("plain", max_concurrency=5)
    lease = g.acquire("plain", key="k")
    lease2 = g.acquire("unconfigured", key="k")
    assert key_fields(rclient, ns) == {}
    meta = rclient.hget(keys.lease_keys(ns)[3], bytes.fromhex(lease.lease_id))
    assert wire.META_KEY_MARK not in meta
    lease.release()
    lease2.release()


def test_limit_decorator_takes_the_key_from_the_event(g: guard.Guard) -> None:
    g.admin.put_function("f", key_max_concurrency=0, key_overrides={"paid": 1})

    @g.limit("f", key=lambda event, context: event.get("tenant"))
    def handler(event: dict[str, Any], context: Any) -> str:
        return "ran"

    assert handler({"tenant": "paid"}, None) == "ran"
    assert handler({}, None) == "ran"  # None: no key
    with pytest.raises(guard.Throttled) as e:
        handler({"tenant": "free"}, None)
    assert e.value.scope == "key"


def test_shadow_counts_key_scopes(g: guard.Guard, rclient, ns) -> None:
    g.admin.replace_config(
        Config(
            groups={"grp": Group.build(members=["f"], key_max_concurrency=1, mode="shadow")},
            functions={"f": Function.build(key_max_concurrency=5)},
        )
    )
    g.acquire("f", key="k")
    second = g.acquire("f", key="k")
    assert second.shadow_scope == "group-key:grp"
    assert int(rclient.hget(keys.lease_keys(ns)[1], "s:f|group-key:grp")) == 1


# -- rates (real server time) ------------------------------------------------------------------


def test_rate_refusal_is_exact_and_waiting_it_out_is_granted(g: guard.Guard, rclient, ns) -> None:
    g.admin.put_function("f", rate_per_second=5, rate_burst=2)
    g.acquire("f").release()
    g.acquire("f").release()
    t = throttled(g, "f")
    assert t.scope == "rate:function" and 0 < t.retry_after <= 0.2
    time.sleep(t.retry_after)
    g.acquire("f").release()  # nothing else competes: granted
    assert int(rclient.hget(keys.lease_keys(ns)[1], "t:f|rate:function")) == 1


def test_a_wait_shorter_than_the_next_token_gives_up_at_once(g: guard.Guard, rclient, ns) -> None:
    """No release frees a token: a waiting acquire refused by a rate whose next token comes
    after its wait ends does not sit out the wait (two tries: the first, and the last that
    counts the timed-out wait), as in the Node SDK; within the wait it sleeps until then."""
    g.admin.put_function("f", rate_per_second=0.1, rate_burst=1)  # one per 10 s
    g.acquire("f").release()
    with pytest.raises(guard.Throttled) as e:
        g.acquire("f", wait=3.0)
    assert e.value.scope == "rate:function" and e.value.retry_after > 3.0
    assert int(rclient.hget(keys.lease_keys(ns)[1], "t:f|rate:function")) == 2
    g.admin.put_function("h", rate_per_second=4, rate_burst=1)  # one per 250 ms
    g.acquire("h").release()
    g.acquire("h", wait=3.0).release()  # slept until the token, then granted
    assert int(rclient.hget(keys.lease_keys(ns)[1], "t:h|rate:function")) <= 3


def test_refusals_and_retried_lease_ids_take_no_token(g: guard.Guard) -> None:
    g.admin.put_function("f", rate_per_second=2, rate_burst=1)  # one per 500 ms
    lid = "0123456789abcdef0123456789abcdef"
    first = g.acquire("f", lease_id=lid)
    for _ in range(20):
        assert g.acquire("f", lease_id=lid).fence == first.fence  # the same lease: no token
    waits = [throttled(g, "f").retry_after for _ in range(20)]
    assert all(0 < w <= 0.5 for w in waits)
    assert waits == sorted(waits, reverse=True)  # refusals took nothing: the wait only shrinks
    time.sleep(waits[-1])
    g.acquire("f")


def test_key_rate_is_per_key_and_account_rate_is_shared(g: guard.Guard, rclient, ns) -> None:
    g.admin.replace_config(
        Config(
            rate_per_second=1,
            rate_burst=3,
            functions={"f": Function.build(key_rate_per_second=1, key_rate_burst=1)},
        )
    )
    g.acquire("f", key="a").release()
    assert throttled(g, "f", key="a").scope == "rate:key"
    g.acquire("f", key="b").release()
    g.acquire("other").release()  # the account rate counts every function
    t = throttled(g, "f", key="c")
    assert t.scope == "rate:account" and 0.9 < t.retry_after <= 1.0
    names = {k.decode() for k in rclient.scan_iter(match=f"guard:{{{ns}}}:r:*")}
    assert names == {f"guard:{{{ns}}}:r:{lv}" for lv in ("k:f|a", "k:f|b")}  # a key each
    assert all(0 < rclient.pttl(n) <= 1000 for n in names)  # gone at full burst
    assert rclient.hexists(keys.lease_keys(ns)[1], "r:a")  # levels: fields of the use hash


def test_shadow_rate_is_counted_and_takes_no_token(g: guard.Guard, rclient, ns) -> None:
    g.admin.replace_config(
        Config(
            groups={"grp": Group.build(members=["f"], rate_per_second=1, mode="shadow")},
            functions={"f": Function.build(rate_per_second=1, rate_burst=3)},
        )
    )
    assert g.acquire("f").shadow_scope is None
    assert g.acquire("f").shadow_scope == "rate:group:grp"
    assert g.acquire("f").shadow_scope == "rate:group:grp"
    assert throttled(g, "f").scope == "rate:function"
    assert int(rclient.hget(keys.lease_keys(ns)[1], "s:f|rate:group:grp")) == 2


def test_rate_after_concurrency_refusal_takes_nothing(g: guard.Guard) -> None:
    g.admin.put_function("f", max_concurrency=1, rate_per_second=1, rate_burst=2)
    a = g.acquire("f")
    assert throttled(g, "f").scope == "function"
    a.release()
    g.acquire("f")  # the second token is still there


# -- idle keys leave nothing -------------------------------------------------------------------


def namespace_memory(r: redis.Redis, ns: str) -> tuple[int, int]:
    """(keys, bytes) of the namespace, but for the lease expiry index: its dict shrinks and
    rehashes step by step with later operations on it (measured after 10,000 releases: 1 KB,
    17 KB or 148 KB from one run to the next), whether or not the leases had keys. Its
    cardinality is checked instead (`exp_size`)."""
    names = list(r.scan_iter(match=f"guard:{{{ns}}}:*", count=1000))  # SCAN expires lazily
    names = [n for n in names if not n.endswith(b":exp")]
    return len(names), sum(r.memory_usage(n, samples=0) or 0 for n in names)


def exp_size(r: redis.Redis, ns: str) -> int:
    return int(r.zcard(f"guard:{{{ns}}}:exp"))


@pytest.mark.slow
def test_ten_thousand_idle_keys_leave_no_state(g: guard.Guard, rclient, ns) -> None:
    g.admin.replace_config(
        Config(
            groups={"grp": Group.build(members=["f"], key_max_concurrency=2)},
            functions={
                "f": Function.build(key_max_concurrency=1, key_rate_per_second=50, key_rate_burst=1)
            },
        )
    )
    # Holding 10,000 leases grows the lease tables (the expiry zset's index keeps its size
    # after they are released, with or without keys): grown first, so only key state counts.
    for lease in [g.acquire("f") for _ in range(10_000)]:
        lease.release()
    g.acquire("f", key="warm-up").release()
    time.sleep(0.05)
    start, start_exp = namespace_memory(rclient, ns), exp_size(rclient, ns)
    held = [g.acquire("f", key=f"tenant-{i}") for i in range(10_000)]
    during = namespace_memory(rclient, ns)
    for lease in held:
        lease.release()
    time.sleep(0.1)  # every key's rate state is back to its full burst (20 ms interval)
    end = namespace_memory(rclient, ns)
    assert during[1] > start[1] + 1_000_000  # 10,000 keys held: real state
    assert end[0] == start[0], (start, end)  # the same keys: no rate state left
    assert exp_size(rclient, ns) == start_exp  # the expiry index is back to its size
    assert abs(end[1] - start[1]) <= 4096, (start, end)


def test_a_waiter_refused_by_its_key_does_not_block_other_keys(
    g: guard.Guard, redis_server, ns
) -> None:
    """A waiting acquire refused by a key cap (or a rate) takes no ticket in the function's
    first-come-first-served queue: the free slot it cannot use goes to another key."""
    import threading

    g.admin.put_function("f", max_concurrency=2, key_max_concurrency=1)
    a = g.acquire("f", key="a")
    other = guard.Guard.from_url(redis_server.url, namespace=ns, timeout=2.0)
    got: list[Any] = []
    t = threading.Thread(target=lambda: got.append(other.acquire("f", key="a", wait=1.5)))
    t.start()
    time.sleep(0.3)  # the waiter was refused by its key (and waits)
    b = g.acquire("f", key="b")  # the second slot is free: granted
    a.release()
    t.join()
    assert got and got[0].held  # the waiter got its key's slot once freed
    b.release()
    got[0].release()
    other.close()


def test_account_rate_and_temporary_overrides_share_the_namespace_plan(g: guard.Guard) -> None:
    g.admin.replace_config(Config(rate_per_second=1, rate_burst=2, functions={"f": Function()}))
    g.admin.override_function("f", max_concurrency=1, seconds=60)  # rides after the rate entry
    a = g.acquire("f")
    assert throttled(g, "f").scope == "function"  # the override is read
    a.release()
    g.acquire("f").release()
    assert throttled(g, "f").scope == "rate:account"  # and the rate too
    g.admin.clear_override("function", "f")
    assert throttled(g, "other").scope == "rate:account"
