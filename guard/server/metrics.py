"""Prometheus metrics. The guard families are read from Redis at scrape time by a custom
collector, so every gunicorn worker — and every Lambda, which is never scraped — shows in
the same numbers. Families and labels are those of docs/http.md ("Metrics").

Throttle scopes are stored as ``function`` / ``group:<name>`` / ``account`` (and, for keys
and rates, ``key`` / ``group-key:<name>`` / ``rate:account`` / ``rate:group:<name>`` /
``rate:function`` / ``rate:key``); the exported ``scope`` label drops the group name, which
goes in ``group``: ``group``, ``group-key``, ``rate:group``. No label ever names a key.
For an ``account`` refusal ``group`` is the function's *reserving* group (the one with
``reserved > 0`` it belongs to), else empty: the protected-headroom alert keys on it.

``guard_http_request_duration_seconds`` is per process; with ``PROMETHEUS_MULTIPROC_DIR``
set (``guard serve`` sets it) prometheus_client's multiprocess mode merges the workers."""

from __future__ import annotations

import os
import time
from collections.abc import Iterable, Iterator

from prometheus_client import CollectorRegistry, Histogram, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from .. import wire
from ..admin import counter_fields, usage_of
from ..errors import GuardError
from ..model import Config
from ..overrides import active
from ..store import RedisStore

Family = GaugeMetricFamily | CounterMetricFamily
LEVEL = ["namespace", "scope", "group", "function"]
COUNTERS = {  # use-hash prefix (guard.wire) -> (family, help)
    wire.GRANTS: ("guard_grants", "Leases granted."),
    wire.EXPIRED: ("guard_leases_expired", "Leases reaped after expiry without a release."),
    wire.UNAVAILABLE: (
        "guard_unavailable",
        "Runs without a lease while the store was out of reach.",
    ),
    wire.TIMED_OUT: ("guard_waits_timed_out", "Acquires whose wait ran out without a slot."),
}
SCOPED = {wire.THROTTLES: "throttles", wire.SHADOW_THROTTLES: "shadow"}


def split_scope(scope: str, function: str, cfg: Config) -> tuple[str, str]:
    """Stored scope -> (scope label, group label). Keys and rates (issue 14): ``key``,
    ``group-key`` (group named), ``rate:account``, ``rate:group`` (group named),
    ``rate:function``, ``rate:key`` — never the key itself."""
    for prefix, label in (
        (wire.SCOPE_GROUP, "group"),
        (wire.SCOPE_GROUP_KEY, "group-key"),
        (wire.SCOPE_RATE_GROUP, "rate:group"),
    ):
        if scope.startswith(prefix):
            return label, scope[len(prefix) :]
    if scope == "account":
        reserving = [n for n in cfg.groups_of(function) if cfg.groups[n].reserved > 0]
        return "account", reserving[0] if reserving else ""
    return scope, ""


class GuardCollector(Collector):
    """Reads every namespace in ``guard:namespaces`` (plus `extra`) at scrape time."""

    def __init__(self, store: RedisStore, extra: Iterable[str] = ()) -> None:
        self.store = store
        self.extra = list(extra)

    def describe(self) -> Iterator[Metric]:
        # Static descriptions: registering must not touch Redis.
        yield from self._families().values()
        yield self._waits()

    def _waits(self) -> HistogramMetricFamily:
        return HistogramMetricFamily(
            "guard_wait_seconds",
            "Waits of waiting acquires that ended (granted or timed out), from the first "
            "refused try (server time).",
            labels=["namespace", "function"],
        )

    def _families(self) -> dict[str, Family]:
        f: dict[str, Family] = {
            "in_use": GaugeMetricFamily("guard_in_use", "Slots held now.", labels=LEVEL),
            "limit": GaugeMetricFamily("guard_limit", "max_concurrency (when set).", labels=LEVEL),
            "reserved": GaugeMetricFamily(
                "guard_reserved",
                "Slots of the account limit reserved for a group.",
                labels=["namespace", "group"],
            ),
            "throttles": CounterMetricFamily(
                "guard_throttles",
                "Acquires refused, by refusing scope.",
                labels=["namespace", "function", "scope", "group"],
            ),
            "shadow": CounterMetricFamily(
                "guard_shadow_throttles",
                "Grants a shadow-mode limit would have refused.",
                labels=["namespace", "function", "scope", "group"],
            ),
            "waiting": GaugeMetricFamily(
                "guard_waiting",
                "Acquires waiting in the function's queue (live tickets).",
                labels=["namespace", "function"],
            ),
            "override": GaugeMetricFamily(
                "guard_override_limit",
                "max_concurrency of a temporary override in force.",
                labels=LEVEL,
            ),
            "override_left": GaugeMetricFamily(
                "guard_override_seconds_left",
                "Seconds until a temporary override ends.",
                labels=LEVEL,
            ),
            "up": GaugeMetricFamily("guard_store_up", "1 when the last scrape read the store."),
            "dur": GaugeMetricFamily(
                "guard_scrape_duration_seconds", "Time this scrape spent reading the store."
            ),
        }
        for prefix, (name, doc) in COUNTERS.items():
            f[prefix] = CounterMetricFamily(name, doc, labels=["namespace", "function"])
        return f

    def collect(self) -> Iterator[Metric]:
        start = time.perf_counter()
        fam, waits = self._families(), self._waits()
        up = 1.0
        try:
            for ns in sorted(set(self.store.namespaces()) | set(self.extra)):
                self._namespace(ns, fam, waits)
        except GuardError:
            up = 0.0
            fam, waits = self._families(), self._waits()  # no half-read namespaces
        fam["up"].add_metric([], up)
        fam["dur"].add_metric([], time.perf_counter() - start)
        yield from fam.values()
        yield waits

    def _account_rate(self, ns: str, cfg: Config, counters: dict[str, str]) -> dict[str, str]:
        fields = _account_rate_fields(cfg, counters)
        if not fields:
            return {}
        more = self.store.usage_fields(ns, fields)
        return {k: v for k, v in more.items() if k in fields}

    def _namespace(self, ns: str, fam: dict[str, Family], hist: HistogramMetricFamily) -> None:
        fields = self.store.read_config(ns)
        cfg = Config.from_fields(fields)
        # Reaps expired leases first; a bounded read (docs/guarantees.md "Bounds"): the
        # config's names, at most keys.MAX_UNCONFIGURED_NAMES others, the rest as keys.OTHER.
        now = self.store.server_time_ms()
        overrides = active(fields, now)
        counters = self.store.usage_fields(ns, counter_fields(cfg, overrides))
        if cfg.rate_per_second is not None:
            counters.update(self._account_rate(ns, cfg, counters))
        use = usage_of(cfg, counters, overrides, now)
        acct = use["account"]
        rows = [("account", "", "", acct)]
        rows += [("group", n, "", v) for n, v in use["groups"].items()]
        rows += [("function", "", n, v) for n, v in use["functions"].items()]
        for scope, group, fn, v in rows:
            labels = [ns, scope, group, fn]
            fam["in_use"].add_metric(labels, v["in_use"])
            if v["max_concurrency"] is not None:
                fam["limit"].add_metric(labels, v["max_concurrency"])
            if v.get("override"):
                fam["override"].add_metric(labels, v["override"]["max_concurrency"])
                fam["override_left"].add_metric(labels, v["override"]["seconds_left"])
        for n, v in use["groups"].items():
            fam["reserved"].add_metric([ns, n], v["reserved"])
        # The same bounded set of names as the counters: configured functions, at most
        # keys.MAX_UNCONFIGURED_NAMES others and keys.OTHER.
        for fn, n in self.store.queued(ns, sorted(use["functions"])).items():
            fam["waiting"].add_metric([ns, fn], n)
        waits: dict[str, dict[str, float]] = {}
        for field in sorted(counters):
            if field.startswith(wire.WAIT_TIME) and wire.SCOPE_SEP in field:
                fn, b = field[len(wire.WAIT_TIME) :].rsplit(wire.SCOPE_SEP, 1)
                waits.setdefault(fn, {})[b] = float(counters[field] or 0)
                continue
            split = wire.split_counter(field)
            if split is None:
                continue
            prefix, fn, scope = split
            value = float(counters[field] or 0)
            if prefix in COUNTERS:
                fam[prefix].add_metric([ns, fn], value)
            else:
                label, group = split_scope(scope, fn, cfg)
                fam[SCOPED[prefix]].add_metric([ns, fn, label, group], value)
        for fn, per in sorted(waits.items()):
            # stored one count per bucket: Prometheus buckets are cumulative
            total, buckets = 0.0, []
            for b in wire.WAIT_BUCKETS:
                total += per.get(b, 0.0)
                buckets.append((b if b == "+Inf" else repr(float(b)), total))
            hist.add_metric([ns, fn], buckets, sum_value=per.get(wire.WAIT_SUM, 0.0) / 1000)


def _unlisted_names(cfg: Config, counters: dict[str, str]) -> list[str]:
    """The functions `counters` holds that the config does not name (bounded: the
    unconfigured names read_usage.lua returns, at most keys.MAX_UNCONFIGURED_NAMES + OTHER)."""
    names = set(cfg.functions).union(*(g.members for g in cfg.groups.values()))
    found = {s[1] for f in counters if (s := wire.split_counter(f)) is not None}
    return sorted(found - names)


def _account_rate_fields(cfg: Config, counters: dict[str, str]) -> list[str]:
    """``rate:account`` throttle counters of the unconfigured functions: read_usage.lua reads
    only their concurrency scopes, and the account rate applies to every function."""
    scope = wire.SCOPE_RATE_ACCOUNT
    return [
        f"{p}{fn}{wire.SCOPE_SEP}{scope}"
        for fn in _unlisted_names(cfg, counters)
        for p in (wire.THROTTLES, wire.SHADOW_THROTTLES)
    ]


def _multiproc() -> bool:
    return bool(os.environ.get("PROMETHEUS_MULTIPROC_DIR"))


class HttpMetrics:
    """Request-duration histogram, per app; merged across workers in multiprocess mode."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.histogram = Histogram(
            "guard_http_request_duration_seconds",
            "HTTP request duration by method, route (URL rule) and status.",
            ["method", "route", "status"],
            registry=None if _multiproc() else self.registry,
        )

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        self.histogram.labels(method, route, str(status)).observe(seconds)

    def exposition(self, guard: GuardCollector) -> bytes:
        registry = CollectorRegistry(auto_describe=True)
        registry.register(guard)
        if _multiproc():
            from prometheus_client import multiprocess

            multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
            return generate_latest(registry)
        return generate_latest(registry) + generate_latest(self.registry)
