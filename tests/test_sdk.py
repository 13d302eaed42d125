"""The SDK surface: decorator and context manager, waiting woken by a release, on_unavailable
(open / closed, remembered per function, cold-start default), fail-open counts reaching the
store, the kill switch, argument errors, and no raw redis-py error ever escaping."""

from __future__ import annotations

import subprocess
import sys
import threading
import time

import pytest
import redis
from redis_proc import RedisProcess

import guard
from guard import keys


def test_limit_decorator_uses_lambda_name_and_context(
    g: guard.Guard, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_LAMBDA_FUNCTION_NAME", "checkout")
    seen = {}

    class Ctx:
        def get_remaining_time_in_millis(self) -> int:
            return 4000

    @g.limit()
    def handler(event: dict, context: object) -> str:
        seen["usage"] = g.admin.usage()["functions"]["checkout"]["in_use"]
        return "ok"

    assert handler({}, Ctx()) == "ok"
    assert seen["usage"] == 1
    assert g.admin.usage()["account"]["in_use"] == 0


def test_limit_decorator_refuses_with_throttled(g: guard.Guard) -> None:
    g.admin.put_function("ingest", max_concurrency=0)

    @g.limit("ingest")
    def handler(event: dict, context: object) -> str:
        raise AssertionError("must not run")

    with pytest.raises(guard.Throttled) as ei:
        handler({}, None)
    assert ei.value.scope == "function"


def test_slot_releases_on_exception(g: guard.Guard) -> None:
    with pytest.raises(RuntimeError), g.slot("job"):
        raise RuntimeError("boom")
    assert g.admin.usage()["account"]["in_use"] == 0


def test_missing_function_name_is_a_usage_error(
    g: guard.Guard, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("AWS_LAMBDA_FUNCTION_NAME", raising=False)
    with pytest.raises(guard.UsageError) as ei:
        g.acquire()
    assert ei.value.field == "function"


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"ttl": 0}, "ttl"),
        ({"ttl": -1}, "ttl"),
        ({"ttl": float("nan")}, "ttl"),
        ({"ttl": "10"}, "ttl"),
        ({"ttl": 10**9}, "ttl"),
        ({"wait": -1}, "wait"),
        ({"lease_id": "xyz"}, "lease_id"),
        ({"lease_id": "00" * 15}, "lease_id"),
    ],
)
def test_bad_arguments_are_usage_errors(g: guard.Guard, kwargs: dict, field: str) -> None:
    with pytest.raises(guard.UsageError) as ei:
        g.acquire("job", **kwargs)
    assert isinstance(ei.value, ValueError)
    assert ei.value.field == field
    assert g.admin.usage()["account"]["in_use"] == 0


def test_bad_function_name(g: guard.Guard) -> None:
    with pytest.raises(guard.UsageError, match="function"):
        g.acquire("has space")


def test_bad_constructor_arguments(redis_server: RedisProcess) -> None:
    with pytest.raises(guard.UsageError):
        guard.Guard.from_url(redis_server.url, on_unavailable="maybe")
    with pytest.raises(guard.UsageError):
        guard.Guard.from_url(redis_server.url, namespace="{bad}")


def test_wait_is_woken_by_a_release(g: guard.Guard) -> None:
    g.admin.put_function("ingest", max_concurrency=1)
    holder = g.acquire("ingest", ttl=30)  # with no history, the hint says ~30 s
    with pytest.raises(guard.Throttled) as ei:
        g.acquire("ingest")
    assert ei.value.retry_after > 20
    timer = threading.Timer(0.3, holder.release)
    timer.start()
    t0 = time.monotonic()
    lease = g.acquire("ingest", wait=15)
    waited = time.monotonic() - t0
    timer.join()
    assert lease.held
    # Woken by the release, not by the ~30 s hint nor the 15 s wait bound.
    assert waited < 10


def test_wait_times_out_with_throttled(g: guard.Guard) -> None:
    g.admin.put_function("ingest", max_concurrency=1)
    g.acquire("ingest")
    t0 = time.monotonic()
    with pytest.raises(guard.Throttled):
        g.acquire("ingest", wait=0.3)
    assert time.monotonic() - t0 >= 0.3


def test_wait_is_woken_by_a_raised_limit(g: guard.Guard) -> None:
    g.admin.put_function("ingest", max_concurrency=0)
    timer = threading.Timer(0.3, lambda: g.admin.patch_function("ingest", max_concurrency=1))
    timer.start()
    lease = g.acquire("ingest", wait=15)  # max 0 → hint 5 s; the config write wakes it
    timer.join()
    assert lease.held


@pytest.fixture
def own_redis() -> RedisProcess:
    server = RedisProcess().start()
    yield server
    server.cleanup()


def test_on_unavailable_open_runs_unguarded_and_counts(own_redis: RedisProcess) -> None:
    g = guard.Guard.from_url(own_redis.url, namespace="p", timeout=0.2)
    g.acquire("job").release()
    own_redis.stop()
    leases = [g.acquire("job") for _ in range(3)]
    assert all(x.unguarded and not x.held for x in leases)
    assert leases[0].release() is False and leases[0].renew() is False
    assert g.unavailable_pending() == {"job": 3}
    own_redis.start()
    g.acquire("job")  # the next successful call carries the count to the store
    g.acquire("other")
    assert g.unavailable_pending() == {}
    c = own_redis.client()
    assert c.hget(keys.lease_keys("p")[1], "u:job") == b"3"


def test_on_unavailable_closed_is_remembered_per_function(own_redis: RedisProcess) -> None:
    g = guard.Guard.from_url(own_redis.url, namespace="p", timeout=0.2, on_unavailable="open")
    g.admin.put_function("payments", on_unavailable="closed")
    g.acquire("payments").release()
    g.acquire("reports").release()
    assert g.policy("payments") == "closed"
    own_redis.stop()
    with pytest.raises(guard.GuardUnavailable) as ei:
        g.acquire("payments")
    assert ei.value.function == "payments"
    assert isinstance(ei.value.__cause__, guard.GuardUnavailable)
    assert g.acquire("reports").unguarded  # its own setting (unset) → the Guard default


def test_cold_start_default_applies_before_any_contact() -> None:
    port = RedisProcess().port  # nothing listens there
    g = guard.Guard.from_url(f"redis://127.0.0.1:{port}/0", timeout=0.1, on_unavailable="closed")
    t0 = time.monotonic()
    with pytest.raises(guard.GuardUnavailable):
        g.acquire("job")
    assert time.monotonic() - t0 < 5  # bounded by the timeouts, not a hang


def test_kill_switch(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GUARD_DISABLED", "1")
    monkeypatch.delenv("GUARD_REDIS_URL", raising=False)
    monkeypatch.delenv("GUARD_URL", raising=False)
    g = guard.Guard.from_env()
    lease = g.acquire("anything")
    assert lease.unguarded and lease.release() is False


def test_from_env(redis_server: RedisProcess, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GUARD_REDIS_URL", redis_server.url)
    monkeypatch.setenv("GUARD_NAMESPACE", "envns")
    monkeypatch.delenv("GUARD_DISABLED", raising=False)
    monkeypatch.delenv("GUARD_URL", raising=False)
    g = guard.Guard.from_env()
    assert g.namespace == "envns"
    g.acquire("job").release()
    monkeypatch.delenv("GUARD_REDIS_URL")
    with pytest.raises(guard.UsageError):
        guard.Guard.from_env()


def test_store_errors_are_wrapped(g: guard.Guard, rclient: redis.Redis, ns: str) -> None:
    rclient.set(keys.lease_keys(ns)[1], "not a hash")  # WRONGTYPE inside the script
    with pytest.raises(guard.GuardError) as ei:
        g.admin.usage()
    assert not isinstance(ei.value, redis.RedisError)
    lease = g.acquire("job")  # acquire treats a broken store like an unreachable one
    assert lease.unguarded


def test_background_renew_keeps_a_long_hold(g: guard.Guard) -> None:
    with g.slot("long", ttl=0.3, renew=True) as lease:
        time.sleep(1.0)  # > 3 TTLs
        assert lease.held and not lease.lost
        assert g.admin.usage()["functions"]["long"]["in_use"] == 1
    assert g.admin.usage()["account"]["in_use"] == 0


def test_import_is_light() -> None:
    code = (
        "import sys, guard; "
        "bad = [m for m in ('flask', 'boto3', 'botocore', 'gunicorn', 'pydantic') "
        "if m in sys.modules]; print(bad)"
    )
    out = subprocess.check_output([sys.executable, "-c", code], text=True).strip()
    assert out == "[]"


def test_store_reset_is_unavailable_not_unlimited(own_redis: RedisProcess) -> None:
    """A namespace the client saw configured and now finds empty (Redis restarted without
    persistence) is not run without limits: on_unavailable decides, runs are counted."""
    g = guard.Guard.from_url(own_redis.url, namespace="r", timeout=0.5)
    g.admin.put_function("payments", max_concurrency=1, on_unavailable="closed")
    g.acquire("payments").release()
    g.acquire("reports").release()
    own_redis.restart()  # comes back empty
    with pytest.raises(guard.StoreReset):
        g.acquire("payments")  # closed: refused, not granted without its limit
    lease = g.acquire("reports")  # open (the default): runs unguarded, counted
    assert lease.unguarded
    c = own_redis.client()
    assert c.hlen(keys.lease_keys("r")[3]) <= 1  # no lease left behind (at most the sentinel)
    g.admin.put_function("payments", max_concurrency=1, on_unavailable="closed")  # re-applied
    held = g.acquire("payments")
    assert held.held
    with pytest.raises(guard.Throttled):
        g.acquire("payments")  # the limit is back
    assert int(c.hget(keys.lease_keys("r")[1], "u:reports")) >= 1


def test_never_configured_namespace_is_not_a_reset(own_redis: RedisProcess) -> None:
    g = guard.Guard.from_url(own_redis.url, namespace="fresh", timeout=0.5)
    g.acquire("job").release()
    own_redis.restart()
    assert g.acquire("job").held  # no limits was the setting all along
