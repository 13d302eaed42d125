"""Waiting at scale (issue 18): first come, first served across processes through tickets in
Redis, one wake-up per freed slot. Against a real redis-server; the store-level tests drive
acquire_lease.lua directly so the order is decided by the script, not by thread timing."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable

import pytest
import redis

import guard
from guard import keys, scripts
from guard.store import Grant, RedisStore, Refusal


@pytest.fixture
def st(g: guard.Guard) -> RedisStore:
    store = g.backend
    assert isinstance(store, RedisStore)
    return store


def ids(n: int) -> list[bytes]:
    return [os.urandom(16) for _ in range(n)]


def wake_message(st: RedisStore, ns: str, act: Callable[[], object]) -> bytes | None:
    """The first message on the namespace's release channel after `act` (None if none came
    within 2 s)."""
    ps = st.client.pubsub()
    ps.subscribe(keys.release_channel(ns))
    assert ps.get_message(timeout=2)["type"] == "subscribe"
    act()
    msg = ps.get_message(timeout=2)
    ps.close()
    return None if msg is None else msg["data"]


def test_freed_slot_goes_to_the_oldest_ticket(g: guard.Guard, st: RedisStore, ns: str) -> None:
    g.admin.put_function("f", max_concurrency=1)
    holder, a, b = ids(3)
    assert isinstance(st.acquire(ns, "f", holder, 30_000), Grant)
    assert isinstance(st.acquire(ns, "f", a, 30_000, wait_ms=5000), Refusal)  # a queues first
    assert isinstance(st.acquire(ns, "f", b, 30_000, wait_ms=5000), Refusal)
    assert st.release(ns, holder)
    r = st.acquire(ns, "f", b, 30_000, wait_ms=5000)  # b retries first, but a is older
    assert isinstance(r, Refusal) and r.scope == "function"
    assert isinstance(st.acquire(ns, "f", a, 30_000, wait_ms=5000), Grant)
    assert st.release(ns, a)
    assert isinstance(st.acquire(ns, "f", b, 30_000, wait_ms=5000), Grant)


def test_newcomer_without_wait_is_refused_while_tickets_are_queued(
    g: guard.Guard, st: RedisStore, ns: str
) -> None:
    g.admin.put_function("f", max_concurrency=2)
    h1, h2, a, late = ids(4)
    for h in (h1, h2):
        assert isinstance(st.acquire(ns, "f", h, 30_000), Grant)
    assert isinstance(st.acquire(ns, "f", a, 30_000, wait_ms=5000), Refusal)
    st.release(ns, h1)
    with pytest.raises(guard.Throttled) as ei:
        g.acquire("f")  # a slot is free, but a is queued for it
    assert ei.value.scope == "function"
    assert isinstance(st.acquire(ns, "f", a, 30_000, wait_ms=5000), Grant)
    st.release(ns, h2)  # nobody queued now: a newcomer takes the slot at once
    assert isinstance(st.acquire(ns, "f", late, 30_000), Grant)


def test_queue_left_alone_once_nobody_waits(
    g: guard.Guard, st: RedisStore, ns: str, rclient: redis.Redis
) -> None:
    """The uncontended path reads w:<fn> with the counters and skips the queue; the last
    ticket granted sets it back to 0."""
    g.admin.put_function("f", max_concurrency=1)
    h, a = ids(2)
    st.acquire(ns, "f", h, 30_000)
    st.acquire(ns, "f", a, 30_000, wait_ms=5000)
    use = keys.lease_keys(ns)[1]
    assert float(rclient.hget(use, "w:f") or 0) > 0
    assert rclient.zcard(keys.queue_key(ns, "f")) == 1
    st.release(ns, h)
    assert isinstance(st.acquire(ns, "f", a, 30_000, wait_ms=5000), Grant)
    assert rclient.hget(use, "w:f") == b"0"
    assert rclient.zcard(keys.queue_key(ns, "f")) == 0


def test_abandoned_ticket_lapses(redis_server, ns: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """A waiter that stops retrying (crashed) holds its place for at most TICKET_TTL, even
    with a long wait; one whose wait ends lapses at its end."""
    monkeypatch.setitem(scripts.CONSTANTS, "TICKET_MS", 300)
    g = guard.Guard.from_url(redis_server.url, namespace=ns, timeout=2.0)
    try:
        st = g.backend
        assert isinstance(st, RedisStore)
        g.admin.put_function("f", max_concurrency=1)
        h, crashed, late = ids(3)
        st.acquire(ns, "f", h, 30_000)
        st.acquire(ns, "f", crashed, 30_000, wait_ms=60_000)  # never retries
        st.release(ns, h)
        assert isinstance(st.acquire(ns, "f", late, 30_000), Refusal)  # still its turn
        time.sleep(0.4)
        assert isinstance(st.acquire(ns, "f", late, 30_000), Grant)
    finally:
        g.close()


def test_wait_that_runs_out_drops_its_ticket_and_is_counted(
    g: guard.Guard, ns: str, rclient: redis.Redis
) -> None:
    g.admin.put_function("f", max_concurrency=1)
    held = g.acquire("f")
    with pytest.raises(guard.Throttled):
        g.acquire("f", wait=0.2)
    assert rclient.zcard(keys.queue_key(ns, "f")) == 0
    assert rclient.hget(keys.lease_keys(ns)[1], "o:f") == b"1"
    held.release()
    assert g.acquire("f").held  # no ticket left blocking newcomers


def test_release_names_the_oldest_ticket(g: guard.Guard, st: RedisStore, ns: str) -> None:
    """One release wakes one waiter across all processes: the message names the ticket."""
    g.admin.put_function("f", max_concurrency=1)
    h, a, b = ids(3)
    st.acquire(ns, "f", h, 30_000)
    st.acquire(ns, "f", a, 30_000, wait_ms=5000)
    st.acquire(ns, "f", b, 30_000, wait_ms=5000)
    assert wake_message(st, ns, lambda: st.release(ns, h)) == b"f|" + a


def test_waiters_are_granted_in_arrival_order(g: guard.Guard) -> None:
    """Threads that start waiting one after another get the slot in that order."""
    g.admin.put_function("f", max_concurrency=1)
    holder = g.acquire("f", ttl=30)
    order: list[int] = []
    lock = threading.Lock()

    def wait(i: int) -> None:
        with g.slot("f", ttl=30, wait=20):
            with lock:
                order.append(i)
            time.sleep(0.02)

    ts = []
    for i in range(6):
        t = threading.Thread(target=wait, args=(i,))
        t.start()
        ts.append(t)
        time.sleep(0.15)  # each has queued its ticket before the next starts
    holder.release()
    for t in ts:
        t.join(30)
    assert order == list(range(6))


@pytest.mark.slow
@pytest.mark.parametrize(("procs", "threads"), [(1, 200), (4, 50)])
def test_waiting_at_scale(redis_server, ns: str, procs: int, threads: int) -> None:
    """Issue 18's scenario for 5 s (the 10 s figures: `python tests/waiting_worker.py`):
    a max-5 function, 20 ms holds. No connection errors, never more than 5 holders counted
    outside the SDK, nobody overtaken by more than scheduling noise (waits that start
    together at the beginning aside, see waiting_worker). Throughput is printed, not
    asserted (a benchmark figure on a shared machine; measured 215/s and 212/s of the ideal
    250/s in the 10 s runs)."""
    from waiting_worker import measure

    r = measure(redis_server.url, ns, procs, threads, seconds=5.0)
    print(r)
    assert r["errors"] == []
    assert r["grants"] > 100  # the waiters did get slots
    assert r["peak_holders"] <= 5
    assert r["peak_holders"] == 5  # the limit was reached: the bound was exercised
    assert r["timeouts"] == 0  # a 10 s wait is far longer than the ~1 s queue
    # Start times are taken in the client before the acquire reaches Redis: on a loaded
    # machine a thread can be scheduled late by more than 50 ms, so a few near-ties may look
    # overtaken (seen: 5 of 1031 under the full suite, worst 0.34 s). Without the queue the
    # same run has hundreds overtaken by seconds (base: 591-1008, worst 5.3 s).
    assert r["order_violations_50ms"] <= r["grants"] // 100, r
    assert r["worst_overtake_s"] < 0.5, r


@pytest.mark.slow
@pytest.mark.parametrize(("procs", "threads"), [(1, 200), (4, 50)])
def test_group_waiting_at_scale(redis_server, ns: str, procs: int, threads: int) -> None:
    """Two functions (max 5 each) in a group of max 5, half the waiters on each: the group's
    queue orders them together, so the order check holds across the two functions (base,
    with per-function queues only: ~400 of ~1000 grants overtaken, worst 0.9 s)."""
    from waiting_worker import measure

    r = measure(redis_server.url, ns, procs, threads, seconds=5.0, group=True)
    print(r)
    assert r["errors"] == []
    assert r["grants"] > 100
    assert r["peak_holders"] == 5
    assert r["timeouts"] == 0
    assert r["order_violations_50ms"] <= r["grants"] // 100, r
    assert r["worst_overtake_s"] < 0.5, r


def group_of_two(g: guard.Guard, gmax: int = 1) -> None:
    g.admin.put_function("a")
    g.admin.put_function("b")
    g.admin.put_group("g", max_concurrency=gmax, members=["a", "b"])


def test_freed_group_slot_goes_to_the_oldest_ticket_of_any_member(
    g: guard.Guard, st: RedisStore, ns: str
) -> None:
    """Refused at the group: the group's queue orders the waiters of its functions."""
    group_of_two(g)
    holder, old_b, new_a, late = ids(4)
    assert isinstance(st.acquire(ns, "a", holder, 30_000), Grant)
    r = st.acquire(ns, "b", old_b, 30_000, wait_ms=5000)
    assert isinstance(r, Refusal) and r.scope == "group:g"
    assert isinstance(st.acquire(ns, "a", new_a, 30_000, wait_ms=5000), Refusal)
    assert st.release(ns, holder)
    r = st.acquire(ns, "a", new_a, 30_000, wait_ms=5000)  # a's own queue: it is first there
    assert isinstance(r, Refusal) and r.scope == "group:g"  # but b's waiter is older
    assert isinstance(st.acquire(ns, "a", late, 30_000), Refusal)  # a newcomer too
    assert isinstance(st.acquire(ns, "b", old_b, 30_000, wait_ms=5000), Grant)
    assert st.release(ns, old_b)
    assert isinstance(st.acquire(ns, "a", new_a, 30_000, wait_ms=5000), Grant)
    assert st.release(ns, new_a)
    use = keys.lease_keys(ns)[1]
    assert st.client.hget(use, "W:g") == b"0"  # the group's queue emptied: plain path again
    assert isinstance(st.acquire(ns, "a", late, 30_000), Grant)


def test_waiter_refused_by_its_function_holds_no_group_slot(
    g: guard.Guard, st: RedisStore, ns: str
) -> None:
    """A waiter whose own function is full leaves the group's queue: it could not use a group
    slot, so it does not hold one back from the other members' waiters."""
    g.admin.put_function("a", max_concurrency=1)
    g.admin.put_function("b")
    g.admin.put_group("g", max_concurrency=2, members=["a", "b"])
    ha, hb, wa, wb = ids(4)
    assert isinstance(st.acquire(ns, "a", ha, 30_000), Grant)
    assert isinstance(st.acquire(ns, "b", hb, 30_000), Grant)
    assert st.acquire(ns, "a", wa, 30_000, wait_ms=5000).scope == "function"  # type: ignore[union-attr]
    assert st.acquire(ns, "b", wb, 30_000, wait_ms=5000).scope == "group:g"  # type: ignore[union-attr]
    assert st.release(ns, hb)  # a group slot frees; a is still full
    assert st.acquire(ns, "a", wa, 30_000, wait_ms=5000).scope == "function"  # type: ignore[union-attr]
    assert isinstance(st.acquire(ns, "b", wb, 30_000, wait_ms=5000), Grant)


def test_release_names_the_oldest_group_ticket(g: guard.Guard, st: RedisStore, ns: str) -> None:
    """A release of a's lease names b's ticket, the oldest in the group's queue."""
    group_of_two(g)
    h, wb = ids(2)
    st.acquire(ns, "a", h, 30_000)
    st.acquire(ns, "b", wb, 30_000, wait_ms=5000)
    assert wake_message(st, ns, lambda: st.release(ns, h)) == b"a|" + wb


def test_expired_lease_wakes_the_oldest_ticket(
    g: guard.Guard, st: RedisStore, ns: str, rclient: redis.Redis
) -> None:
    """The reap pass that frees an expired lease's slot names the tickets it goes to, like a
    release (here run by a newcomer's acquire, which the queue refuses)."""
    g.admin.put_function("f", max_concurrency=1)
    h, a, late = ids(3)
    assert isinstance(st.acquire(ns, "f", h, 100), Grant)
    st.acquire(ns, "f", a, 30_000, wait_ms=5000)
    ps = st.client.pubsub()
    ps.subscribe(keys.release_channel(ns))
    assert ps.get_message(timeout=2)["type"] == "subscribe"
    time.sleep(0.15)
    r = st.acquire(ns, "f", late, 30_000)
    assert isinstance(r, Refusal) and r.scope == "function"  # the slot is a's
    msg = ps.get_message(timeout=2)
    ps.close()
    assert msg is not None and msg["data"] == b"f|" + a
    assert rclient.hget(keys.lease_keys(ns)[1], "x:f") == b"1"


def test_listener_wakes_a_named_ticket_of_another_function(g: guard.Guard) -> None:
    """A group wake-up names tickets of other functions than the released one's: the
    listener wakes them by lease id, and no other waiter."""
    from guard.store import ReleaseListener

    lst = ReleaseListener(None)
    lst._subscribe = lambda ch: False  # type: ignore[method-assign]
    mine, other = ids(2)
    ch = keys.release_channel("n").encode()
    with lst.waiting("n", "b", 0, mine) as wb, lst.waiting("n", "a", 0, other) as wa:
        lst._dispatch({"channel": ch, "type": "message", "data": b"a|" + mine})
        assert wb.event.is_set() and not wa.event.is_set()


def test_wait_time_histogram(http, g: guard.Guard, st: RedisStore, ns: str) -> None:
    """guard_wait_seconds: the waits that ended (granted or timed out), from the first refused
    try, server time; promtool-clean."""
    import subprocess

    from prometheus_client.parser import text_string_to_metric_families
    from test_http_metrics import promtool, value

    g.admin.put_function("f", max_concurrency=1)
    h, a = ids(2)
    st.acquire(ns, "f", h, 30_000)
    st.acquire(ns, "f", a, 30_000, wait_ms=5000)
    time.sleep(0.1)
    st.release(ns, h)
    assert isinstance(st.acquire(ns, "f", a, 30_000, wait_ms=5000), Grant)  # waited ~0.1 s
    with pytest.raises(guard.Throttled):
        g.acquire("f", wait=0.3)  # waited ~0.3 s, ran out
    st.acquire(ns, "f", h, 30_000)  # no wait: not observed
    text = http.get("/metrics").data.decode()
    lab = {"namespace": ns, "function": "f"}
    assert value(text, "guard_wait_seconds_count", **lab) == 2
    assert 0.35 < (value(text, "guard_wait_seconds_sum", **lab) or 0) < 2.0
    buckets = {
        s.labels["le"]: s.value
        for fam in text_string_to_metric_families(text)
        if fam.name == "guard_wait_seconds"
        for s in fam.samples
        if s.name.endswith("_bucket") and s.labels["namespace"] == ns
    }
    assert buckets == {"0.01": 0, "0.05": 0, "0.25": 1, "1.0": 2, "5.0": 2, "30.0": 2, "+Inf": 2}
    tool = promtool()
    if tool is not None:
        r = subprocess.run(
            [tool, "check", "metrics"], input=text.encode(), capture_output=True, timeout=30
        )
        assert r.returncode == 0, r.stdout + r.stderr


def test_metrics_waiting_and_timed_out(http, g: guard.Guard, st: RedisStore, ns: str) -> None:
    from test_http_metrics import value

    g.admin.put_function("f", max_concurrency=1)
    g.acquire("f", ttl=30)
    for w in ids(2):
        st.acquire(ns, "f", w, 30_000, wait_ms=5000)
    with pytest.raises(guard.Throttled):
        g.acquire("f", wait=0.1)  # queued behind them, then ran out: counted, ticket gone
    text = http.get("/metrics").data.decode()
    assert value(text, "guard_waiting", namespace=ns, function="f") == 2
    assert value(text, "guard_waits_timed_out_total", namespace=ns, function="f") == 1


def test_http_wait_seconds_uses_the_queue(http, g: guard.Guard, st: RedisStore, ns: str) -> None:
    """An HTTP acquire with wait_seconds queues a ticket like the SDK: an older SDK waiter
    keeps its turn."""
    g.admin.put_function("f", max_concurrency=1)
    held = g.acquire("f", ttl=30)
    older = os.urandom(16)
    st.acquire(ns, "f", older, 30_000, wait_ms=10_000)
    out: dict[str, int] = {}

    def http_wait() -> None:
        body = {"function": "f", "ttl_seconds": 30, "wait_seconds": 0.6}
        out["status"] = http.post(f"/v1/namespaces/{ns}/leases", json=body).status_code

    t = threading.Thread(target=http_wait)
    t.start()
    time.sleep(0.2)
    assert st.client.zcard(keys.queue_key(ns, "f")) == 2  # the HTTP waiter queued behind
    held.release()
    t.join(5)
    assert out["status"] == 429  # the freed slot was the older ticket's
    assert isinstance(st.acquire(ns, "f", older, 30_000, wait_ms=10_000), Grant)


def test_http_wait_longer_than_a_request_keeps_its_place(
    live_server: str, redis_server, ns: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An HTTP-mode wait longer than one request (30 s; 0.4 s here) goes on with the same
    lease id and ``wait_more_seconds``: its ticket is not dropped at the end of a request, so
    a waiter that queued after it stays behind it (base: each request rejoined at the back
    and counted a timed-out wait)."""
    from live import CLIENT_TOKEN

    import guard.http_backend

    monkeypatch.setattr(guard.http_backend, "REQUEST_WAIT", 0.4)
    g = guard.Guard.from_url(redis_server.url, namespace=ns, timeout=5.0)
    hg = guard.Guard.from_url(live_server, namespace=ns, token=CLIENT_TOKEN, timeout=5.0)
    try:
        st = g.backend
        assert isinstance(st, RedisStore)
        g.admin.put_function("f", max_concurrency=1)
        held = g.acquire("f", ttl=30)
        out: dict[str, object] = {}

        def http_wait() -> None:
            out["lease"] = hg.acquire("f", ttl=30, wait=5.0)

        t = threading.Thread(target=http_wait)
        t.start()
        time.sleep(0.2)
        (late,) = ids(1)
        assert isinstance(st.acquire(ns, "f", late, 30_000, wait_ms=10_000), Refusal)
        time.sleep(1.0)  # the HTTP waiter's second and third requests
        q = st.client.zrange(keys.queue_key(ns, "f"), 0, -1)
        assert len(q) == 2 and q[1] == late, q  # the HTTP waiter is still first
        assert st.client.hget(keys.lease_keys(ns)[1], "o:f") is None  # no wait ran out
        held.release()
        t.join(5)
        lease = out["lease"]
        assert isinstance(lease, guard.Lease) and lease.held
        assert isinstance(st.acquire(ns, "f", late, 30_000, wait_ms=10_000), Refusal)
        lease.release()
        assert isinstance(st.acquire(ns, "f", late, 30_000, wait_ms=10_000), Grant)
    finally:
        hg.close()
        g.close()
