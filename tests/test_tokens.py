"""Token configuration, matching and the Host check, as pure code (no server, no Redis)."""

from __future__ import annotations

import hashlib
from typing import Any

import pytest

from guard.errors import UsageError
from guard.server import auth
from guard.server.waiting import Waiters


def sha(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


GOOD = f"""
tokens:
  - name: deployer
    role: admin
    sha256: {sha("a")}
  - name: billing
    role: client
    namespaces: [billing, billing-eu]
    sha256: {sha("b")}
"""


def test_tokens_file_parses() -> None:
    deployer, billing = auth.parse_tokens_file(GOOD)
    assert (deployer.name, deployer.role, deployer.namespaces) == ("deployer", "admin", None)
    assert billing.namespaces == frozenset({"billing", "billing-eu"})
    assert billing.allows("billing") and not billing.allows("payroll")


@pytest.mark.parametrize(
    ("text", "field"),
    [
        ("tokens: 3", "tokens"),
        ("[1, 2]", "tokens"),
        (f"tokens: [{{role: admin, sha256: {sha('a')}}}]", "name"),
        (f"tokens: [{{name: x, role: root, sha256: {sha('a')}}}]", "role"),
        ("tokens: [{name: x, role: admin, sha256: plaintext}]", "sha256"),
        (f"tokens: [{{name: x, role: admin, token: a, sha256: {sha('a')}}}]", "token"),
        (f"tokens: [{{name: x, role: client, namespaces: [], sha256: {sha('a')}}}]", "namespaces"),
        (
            f"tokens: [{{name: x, role: client, namespaces: ['a b'], sha256: {sha('a')}}}]",
            "namespace",
        ),
        (
            f"tokens: [{{name: x, role: admin, sha256: {sha('a')}}}, "
            f"{{name: x, role: admin, sha256: {sha('b')}}}]",
            "name",
        ),
    ],
)
def test_bad_tokens_file_names_the_field(text: str, field: str) -> None:
    with pytest.raises(UsageError) as ei:
        auth.parse_tokens_file(text)
    assert ei.value.field == field


def test_env_tokens_are_unscoped_and_named_by_position() -> None:
    tokens = auth.env_tokens(["a1", "a2"], ["c1"])
    assert [(t.name, t.role, t.namespaces) for t in tokens] == [
        ("GUARD_ADMIN_TOKENS[0]", "admin", None),
        ("GUARD_ADMIN_TOKENS[1]", "admin", None),
        ("GUARD_CLIENT_TOKENS[0]", "client", None),
    ]


@pytest.mark.parametrize("presented", ["a", "b", "c1", "nope"])
def test_identify_compares_against_every_entry(monkeypatch: Any, presented: str) -> None:
    """One hash, one compare_digest per entry, whichever entry matches (or none)."""
    tokens = auth.env_tokens(["x"], ["c1"]) + auth.parse_tokens_file(GOOD)
    calls = []
    real = auth.hmac.compare_digest

    def counting(a: bytes, b: bytes) -> bool:
        calls.append(1)
        return real(a, b)

    monkeypatch.setattr(auth.hmac, "compare_digest", counting)
    found = auth.identify(tokens, presented)
    assert len(calls) == len(tokens)
    want = {"a": "deployer", "b": "billing", "c1": "GUARD_CLIENT_TOKENS[0]", "nope": None}
    assert (found.name if found else None) == want[presented]


def test_a_digest_is_not_a_token() -> None:
    tokens = auth.parse_tokens_file(GOOD)
    assert auth.identify(tokens, sha("a")) is None


@pytest.mark.parametrize(
    ("host", "ok"),
    [
        ("localhost", True),
        ("localhost:8000", True),
        ("api.localhost:8000", True),
        ("127.0.0.1", True),
        ("127.0.0.1:8000", True),
        ("127.8.9.1:80", True),
        ("[::1]", True),
        ("[::1]:8000", True),
        ("evil.example", False),
        ("evil.example:8000", False),
        ("10.0.0.1:8000", False),
        ("localhost.evil.example", False),
        ("127.0.0.1.nip.io", False),
        ("", False),
    ],
)
def test_loopback_host(host: str, ok: bool) -> None:
    assert auth.loopback_host(host) is ok


def test_waiters_cap_per_namespace() -> None:
    w = Waiters(2)
    with w.slot("a") as one, w.slot("a") as two, w.slot("a") as three, w.slot("b") as other:
        assert (one, two, three, other) == (True, True, False, True)
        assert w.waiting("a") == 2
    assert w.waiting("a") == 0 and w.waiting("b") == 0
    with w.slot("a") as again:
        assert again
