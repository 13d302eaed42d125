"""Fixtures: one real redis-server per test session (free port), a clean namespace per test.

Tests never use the machine's Redis on 6379 and only ever delete keys of namespaces they
created themselves."""

from __future__ import annotations

import itertools
import os
import sys
from collections.abc import Iterator

import pytest
import redis

sys.path.insert(0, os.path.dirname(__file__))

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
