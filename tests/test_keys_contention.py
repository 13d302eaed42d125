"""Processes x threads acquire with keys against one real redis-server; holders per key are
counted outside the SDK (contention_worker, workload `keyed`). No key ever holds more than its
cap (at the function or in the group), no function more than its total, and every slot and key
counter comes back."""

from __future__ import annotations

import pytest
from contention_worker import KEYS, hammer_processes

import guard
from guard import keys
from guard.model import Config, Function, Group

pytestmark = pytest.mark.slow


def test_no_key_ever_exceeds_its_cap_or_the_total(
    g: guard.Guard, redis_server, ns, rclient
) -> None:
    g.admin.replace_config(
        Config(
            groups={
                "tenants": Group.build(
                    members=["api", "batch"], key_max_concurrency=3, key_overrides={"big": 5}
                )
            },
            functions={
                "api": Function.build(
                    max_concurrency=6, key_max_concurrency=2, key_overrides={"big": 4}
                )
            },
        )
    )
    caps = {"f:api": 6}
    for k in KEYS:
        caps[f"k:api|{k}"] = 4 if k == "big" else 2
        caps[f"kg:tenants|{k}"] = 5 if k == "big" else 3

    seen, granted, throttled = hammer_processes(redis_server.url, ns, "keyed")
    assert granted > 500 and throttled > 0, (granted, throttled)
    for level, cap in caps.items():
        assert seen.get(level, 0) <= cap, (level, seen)
    # the caps were reached, so the bounds above were exercised
    assert any(seen.get(f"k:api|{k}", 0) == caps[f"k:api|{k}"] for k in KEYS), seen
    assert any(seen.get(f"kg:tenants|{k}", 0) == caps[f"kg:tenants|{k}"] for k in KEYS), seen
    assert g.admin.usage()["account"]["in_use"] == 0
    left = [f for f in rclient.hkeys(keys.lease_keys(ns)[1]) if f.startswith((b"k:", b"kg:"))]
    assert left == []  # every key's counters are gone
