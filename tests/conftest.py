"""Fixtures: one real redis-server per test session (free port), a clean namespace per test.

Tests never use the machine's Redis on 6379 and only ever delete keys of namespaces they
created themselves."""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterator

import pytest
import redis
from redis_proc import RedisProcess

import guard

_ns_counter = itertools.count()


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisProcess]:
    server = RedisProcess().start()
    yield server
    server.cleanup()


@pytest.fixture
def rclient(redis_server: RedisProcess) -> Iterator[redis.Redis]:
    c = redis_server.client()
    yield c
    c.close()


@pytest.fixture
def ns(request: pytest.FixtureRequest, redis_server: RedisProcess) -> Iterator[str]:
    """A namespace no other test uses; its keys are deleted afterwards."""
    name = f"t{os.getpid()}-{next(_ns_counter)}"
    yield name
    c = redis_server.client()
    keys = list(c.scan_iter(match=f"guard:{{{name}}}:*"))
    if keys:
        c.delete(*keys)
    c.srem("guard:namespaces", name)
    c.close()


@pytest.fixture
def g(redis_server: RedisProcess, ns: str) -> Iterator[guard.Guard]:
    client = guard.Guard.from_url(redis_server.url, namespace=ns, timeout=2.0)
    yield client
    client.close()


# -- HTTP service fixtures ------------------------------------------------------------------

from live import ADMIN_TOKEN, CLIENT_TOKEN  # noqa: E402


@pytest.fixture
def app(redis_server: RedisProcess):  # type: ignore[no-untyped-def]
    """The Flask app on the session redis-server, with one admin and one client token."""
    from guard.server import create_app

    app = create_app(
        {
            "TESTING": True,
            "REDIS_URL": redis_server.url,
            "ADMIN_TOKENS": [ADMIN_TOKEN],
            "CLIENT_TOKENS": [CLIENT_TOKEN],
        }
    )
    yield app
    # closed here, not left to the garbage collector: collected in a cycle, a connection's
    # socket may be finalized before the connection and warn (an error under filterwarnings)
    app.extensions["guard.store"].close()


@pytest.fixture
def http(app):  # type: ignore[no-untyped-def]
    """Test client sending the admin token."""
    client = app.test_client()
    client.environ_base["HTTP_AUTHORIZATION"] = f"Bearer {ADMIN_TOKEN}"
    return client


@pytest.fixture(scope="session")
def live_server(redis_server: RedisProcess) -> Iterator[str]:
    """`guard serve --workers 3` on a free port (tokens set); yields its base URL."""
    from live import LiveServer

    server = LiveServer(redis_server.url, workers=3).start()
    yield server.url
    server.stop()


# -- CLI fixtures: the environment that points `guard` at the store or the live server ------


@pytest.fixture
def redis_env(redis_server: RedisProcess, ns: str) -> dict[str, str]:
    return {"GUARD_REDIS_URL": redis_server.url, "GUARD_NAMESPACE": ns, "GUARD_URL": ""}


@pytest.fixture
def http_env(live_server: str, ns: str) -> dict[str, str]:
    return {
        "GUARD_URL": live_server,
        "GUARD_TOKEN": ADMIN_TOKEN,
        "GUARD_NAMESPACE": ns,
        "GUARD_REDIS_URL": "",
    }
