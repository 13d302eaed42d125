"""One admin protocol: the Redis `Admin` and the `HttpAdmin` implement every method of
`guard.admin_api.AdminAPI` with the same signature (parameters and annotations), so the
CLI and `Guard.admin` users never need to know which one they hold. (mypy checks the
return types statically: `Backend.admin` returns an `AdminAPI`.)"""

from __future__ import annotations

import inspect

import pytest

from guard.admin import Admin
from guard.admin_api import AdminAPI
from guard.http_backend import HttpAdmin

METHODS = sorted(n for n, v in vars(AdminAPI).items() if callable(v) and not n.startswith("_"))


def test_the_protocol_covers_the_admin_surface() -> None:
    assert {"config", "replace_config", "leases", "release_lease", "usage"} <= set(METHODS)
    public = {n for n in dir(Admin) if not n.startswith("_") and callable(getattr(Admin, n))}
    assert public == set(METHODS), public ^ set(METHODS)
    public = {
        n for n in dir(HttpAdmin) if not n.startswith("_") and callable(getattr(HttpAdmin, n))
    }
    assert public == set(METHODS), public ^ set(METHODS)


@pytest.mark.parametrize("name", METHODS)
@pytest.mark.parametrize("impl", [Admin, HttpAdmin])
def test_same_signature(impl: type, name: str) -> None:
    want = inspect.signature(getattr(AdminAPI, name))
    got = inspect.signature(getattr(impl, name))
    assert list(got.parameters.values()) == list(want.parameters.values()), (impl, name)
    # the same return type, or the implementation itself where the protocol returns one
    assert got.return_annotation in (want.return_annotation, impl.__name__), (impl, name)
