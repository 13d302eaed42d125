"""Shared fixtures for the deploy-asset tests: repository paths, an HCL loader that gives the
same shape across python-hcl2 versions, promtool, and a PromQL metric-name extractor."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]

# The variables every deploy asset relies on; `guard_serve_env` checks that the server still
# reads each of them.
CORE_SERVE_ENV = frozenset(
    {
        "GUARD_REDIS_URL",
        "GUARD_ADMIN_TOKENS",
        "GUARD_CLIENT_TOKENS",
        "GUARD_NAMESPACE",
        "GUARD_WORKERS",
        "GUARD_CONFIG",
        "PROMETHEUS_MULTIPROC_DIR",
    }
)

# Where `guard serve` (the CLI command, the Flask app it loads, gunicorn options, the config
# file loader) reads its environment: through `guard.settings.Settings` (its fields marked
# "server"), and directly where a variable belongs to another library (PROMETHEUS_*) or is a
# click option of the command group.
SERVE_SOURCES = ("guard/cli.py", "guard/config_file.py", "guard/server/*.py")
# Named there but without effect on a server: the CLI's client-mode options, and a marker
# `guard serve` sets for itself.
NOT_SERVE_SETTINGS = frozenset({"GUARD_URL", "GUARD_TOKEN", "GUARD_EMBEDDED_STORE"})


def serve_env_from_source() -> frozenset[str]:
    """Every environment variable `guard serve` reads: the `Settings` fields marked for the
    server whose value the serve sources use (``st.<field>`` / ``settings.<field>``), plus the
    names quoted in those sources (`os.environ.get("X")`, click's `envvar="X"`)."""
    from dataclasses import fields

    from guard.settings import Settings

    source = "\n".join(
        path.read_text() for pattern in SERVE_SOURCES for path in sorted(REPO.glob(pattern))
    )
    names = set(re.findall(r"[\"'](GUARD_[A-Z0-9_]+|PROMETHEUS_[A-Z_]+)[\"']", source))
    for f in fields(Settings):
        if "server" in f.metadata["who"] and re.search(rf"\.{f.name}\b", source):
            names.add(f.metadata["env"])
    return frozenset(names - NOT_SERVE_SETTINGS)


GUARD_SERVE_ENV = serve_env_from_source()


@pytest.fixture(scope="session")
def repo() -> Path:
    return REPO


@pytest.fixture(scope="session")
def guard_serve_env() -> frozenset[str]:
    """What `guard serve` reads from its environment, grepped from its source (so a renamed
    or removed variable fails the asset tests)."""
    missing = CORE_SERVE_ENV - GUARD_SERVE_ENV
    assert not missing, f"guard serve no longer reads {sorted(missing)}"
    return GUARD_SERVE_ENV


# ---- HCL -------------------------------------------------------------------------------------


def _unquote(s: str) -> str:
    return s[1:-1] if len(s) >= 2 and s[0] == s[-1] == '"' else s


def _normalize(x: Any) -> Any:
    """python-hcl2 >= 5 keeps quotes around keys and strings and adds `__...__` markers;
    older versions do not. Strip both so tests see one shape."""
    if isinstance(x, dict):
        return {_unquote(k): _normalize(v) for k, v in x.items() if not k.startswith("__")}
    if isinstance(x, list):
        return [_normalize(i) for i in x]
    if isinstance(x, str):
        return _unquote(x)
    return x


def load_hcl(path: Path) -> dict[str, Any]:
    import hcl2

    with path.open() as f:
        return _normalize(hcl2.load(f))


def as_list(x: Any) -> list[Any]:
    """A block is a dict in some python-hcl2 versions and a one-item list in others."""
    if x is None:
        return []
    return x if isinstance(x, list) else [x]


@pytest.fixture(scope="session")
def hcl() -> Callable[[Path], dict[str, Any]]:
    return load_hcl


@pytest.fixture(scope="session")
def tf_main() -> dict[str, Any]:
    return load_hcl(REPO / "deploy/terraform/main.tf")


@pytest.fixture(scope="session")
def tf_resources(tf_main: dict[str, Any]) -> dict[str, dict[str, dict[str, Any]]]:
    """{resource type: {name: body}} of deploy/terraform/main.tf."""
    out: dict[str, dict[str, dict[str, Any]]] = {}
    for entry in as_list(tf_main.get("resource")):
        for rtype, named in entry.items():
            for name, body in named.items():
                out.setdefault(rtype, {})[name] = as_list(body)[0]
    return out


@pytest.fixture(scope="session")
def tf_data(tf_main: dict[str, Any]) -> dict[str, dict[str, dict[str, Any]]]:
    out: dict[str, dict[str, dict[str, Any]]] = {}
    for entry in as_list(tf_main.get("data")):
        for dtype, named in entry.items():
            for name, body in named.items():
                out.setdefault(dtype, {})[name] = as_list(body)[0]
    return out


# ---- promtool --------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def promtool() -> Iterator[str]:
    """promtool from PATH or .tools/bin; runs scripts/tools.sh (as `make` does) when neither
    has it. Missing promtool is a failure, never a skip."""
    local = REPO / ".tools/bin/promtool"
    found = shutil.which("promtool") or (str(local) if os.access(local, os.X_OK) else None)
    if found is None:
        subprocess.run([str(REPO / "scripts/tools.sh")], check=False, timeout=600)
        found = str(local) if os.access(local, os.X_OK) else None
    assert found, "promtool is missing: scripts/tools.sh must install it into .tools/bin"
    yield found


# ---- PromQL ----------------------------------------------------------------------------------

_KEYWORDS = frozenset(
    {"and", "or", "unless", "bool", "offset", "by", "without", "on", "ignoring", "inf", "nan"}
    | {"group_left", "group_right", "atan2"}
)


def promql_metric_names(expr: str) -> set[str]:
    """Metric names an expression selects (also Grafana's `label_values(metric, label)`).

    Strings, label matchers, ranges, grouping clauses, Grafana variables and numbers are
    removed; an identifier followed by `(` is a function or aggregation, not a metric."""
    names: set[str] = set()
    for m in re.finditer(r"label_values\(\s*(?:([A-Za-z_:][\w:]*)[^,()]*,)?\s*\w+\s*\)", expr):
        if m.group(1):
            names.add(m.group(1))
    s = re.sub(r"label_values\([^()]*\)", " ", expr)
    s = re.sub(r'"(?:\\.|[^"\\])*"', " ", s)
    s = re.sub(r"'(?:\\.|[^'\\])*'", " ", s)
    s = re.sub(r"\{[^}]*\}", " ", s)
    s = re.sub(r"\[[^\]]*\]", " ", s)
    s = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", s)
    s = re.sub(r"\$\{[^}]*\}|\$\w+", " ", s)
    s = re.sub(  # numbers and durations (offset 5m, 1h30m)
        r"(?<![\w:])\d+(\.\d+)?([eE][+-]?\d+)?((ms|[smhdwy])(\d+(ms|[smhdwy]))*)?(?![\w:])", " ", s
    )
    for m in re.finditer(r"[A-Za-z_:][A-Za-z0-9_:]*", s):
        if s[m.end() :].lstrip().startswith("(") or m.group(0) in _KEYWORDS:
            continue
        names.add(m.group(0))
    return names


@pytest.fixture(scope="session")
def metric_names() -> Callable[[str], set[str]]:
    return promql_metric_names


@pytest.fixture(scope="session")
def contract_families() -> dict[str, str]:
    """{family: type} from the metrics table of docs/http.md ("Metrics")."""
    text = (REPO / "docs/http.md").read_text()
    fams = dict(re.findall(r"^\|\s*`(guard_[a-z_]+)`\s*\|\s*(gauge|counter|histogram)", text, re.M))
    assert len(fams) >= 10, f"could not read the metrics table of docs/http.md: {fams}"
    return fams


@pytest.fixture(scope="session")
def recording_rules(repo: Path) -> dict[str, str]:
    """{record name: expr} of deploy/prometheus/rules/guard-recording.yml."""
    import yaml

    doc = yaml.safe_load((repo / "deploy/prometheus/rules/guard-recording.yml").read_text())
    return {r["record"]: r["expr"] for g in doc["groups"] for r in g["rules"] if "record" in r}


@pytest.fixture(scope="session")
def allowed_metrics(contract_families: dict[str, str], recording_rules: dict[str, str]) -> set[str]:
    """Series a dashboard or rule may query: the contract's families (with the histogram's
    _bucket/_sum/_count), our recording rules, and `up`."""
    allowed = {"up", *recording_rules}
    for fam, kind in contract_families.items():
        if kind == "histogram":  # a histogram's family name is not itself a series
            allowed |= {f"{fam}_bucket", f"{fam}_sum", f"{fam}_count"}
        else:
            allowed.add(fam)
    return allowed


# ---- the live server with traffic in every family --------------------------------------------


@dataclass
class Traffic:
    """What `traffic` did in its own namespace on the session's live `guard serve`."""

    url: str  # the live server
    namespace: str
    scopes: list[str]  # Throttled.scope of the refusals, in order


@pytest.fixture(scope="session")
def traffic(live_server: str, redis_server: Any) -> Iterator[Traffic]:
    """SDK traffic (direct Redis mode) that gives every contract family a sample in a
    namespace of its own: grants, one refusal by each scope (function, group:etl, account —
    the last one labelled with the reserving group `api`), a shadow throttle, an expired
    lease, a wait that ran out, and a fail-open run reported after the store came back
    (through a TCP proxy that resets connections, then passes them)."""
    from faults.proxy import Proxy

    import guard

    ns = f"e2e{os.getpid()}"
    g = guard.Guard.from_url(redis_server.url, namespace=ns, timeout=2.0)
    proxy = Proxy(redis_server.port, lifetime=120).start()
    flaky = guard.Guard.from_url(f"redis://127.0.0.1:{proxy.port}/0", namespace=ns, timeout=0.2)
    try:
        a = g.admin
        a.set_namespace(max_concurrency=5)  # also lists ns in guard:namespaces (metrics)
        a.put_group("api", reserved=2, members=["login"])
        a.put_group("etl", max_concurrency=1, members=["ingest"])
        a.put_function("capped", max_concurrency=1)
        a.put_function("rep", max_concurrency=0, mode="shadow")
        a.override_group("etl", max_concurrency=1, seconds=600, reason="e2e")  # override families

        proxy.set_mode("reset")  # the store is out of reach: `offline` runs unguarded
        assert flaky.acquire("offline", ttl=30).unguarded
        proxy.set_mode("pass")  # back: the next acquire reports the fail-open run
        flaky.acquire("offline", ttl=30).release()
        assert flaky.unavailable_pending() == {}

        g.acquire("short", ttl=0.05)  # never released: it expires
        time.sleep(0.2)

        scopes = []
        g.acquire("rep", ttl=60)  # shadow: granted, counted as a would-be throttle
        for fn in ("ingest", "capped", "login", "login"):
            # non-members see in_use + api's unused reserve (2) against max 5
            g.acquire(fn, ttl=60)
            if fn != "login":
                with pytest.raises(guard.Throttled) as refused:
                    g.acquire(fn, ttl=60)
                scopes.append(refused.value.scope)
        with pytest.raises(guard.Throttled) as refused:
            g.acquire("login", ttl=60)  # 5 in use: the account refuses a member of api
        scopes.append(refused.value.scope)
        assert scopes == ["group:etl", "function", "account"], scopes
        with pytest.raises(guard.Throttled):
            g.acquire("capped", ttl=60, wait=0.1)  # a wait that runs out (queued, counted)
        yield Traffic(live_server, ns, scopes)
    finally:
        flaky.close()
        proxy.stop()
        c = redis_server.client()
        keys = list(c.scan_iter(match=f"guard:{{{ns}}}:*"))
        if keys:
            c.delete(*keys)
        c.srem("guard:namespaces", ns)
        c.close()
        g.close()


def scrape(url: str) -> str:
    with urllib.request.urlopen(f"{url}/metrics", timeout=10) as r:
        return r.read().decode()


@pytest.fixture(scope="session")
def exposition(traffic: Traffic) -> str:
    """The live server's /metrics after `traffic`."""
    return scrape(traffic.url)
