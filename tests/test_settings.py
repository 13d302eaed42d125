"""`guard.settings`: every GUARD_* variable read in one place, without Redis."""

from __future__ import annotations

import pytest

from guard import UsageError, settings
from guard.settings import Settings


def test_defaults_when_nothing_is_set() -> None:
    st = Settings.from_env({})
    assert st == Settings()
    assert st.store_url is None and st.namespace == "default" and st.on_unavailable == "open"
    assert st.quarantine is None and st.disabled is False and st.workers == 2


def test_values_are_parsed_once_and_typed() -> None:
    st = Settings.from_env(
        {
            "GUARD_REDIS_URL": "redis://r:6379/0",
            "GUARD_URL": "https://guard.example",
            "GUARD_DISABLED": "Yes",
            "GUARD_QUARANTINE": "0",
            "GUARD_TIMEOUT": "0.2",
            "GUARD_MAX_CONNECTIONS": " 7 ",
            "GUARD_ADMIN_TOKENS": "a, b,,",
            "GUARD_METRICS_NAMESPACES": "prod",
            "GUARD_MAX_WAITERS": "0",
            "GUARD_CONFIG_CHECK_SECONDS": "2.5",
            "GUARD_NAMESPACE": "",  # empty is unset
        }
    )
    assert st.store_url == "https://guard.example"  # GUARD_URL wins for the SDK
    assert st.redis_url == "redis://r:6379/0"
    assert st.disabled is True and st.quarantine is False
    assert st.timeout == 0.2 and st.max_connections == 7
    assert st.admin_tokens == ("a", "b") and st.metrics_namespaces == ("prod",)
    assert st.max_waiters == 0 and st.config_check_seconds == 2.5
    assert st.namespace == "default"


@pytest.mark.parametrize(
    ("name", "value", "field"),
    [
        ("GUARD_TIMEOUT", "0", "timeout"),
        ("GUARD_TIMEOUT", "301", "timeout"),
        ("GUARD_TIMEOUT", "soon", "timeout"),
        ("GUARD_TIMEOUT", "nan", "timeout"),
        ("GUARD_MAX_CONNECTIONS", "many", "max_connections"),
        ("GUARD_MAX_CONNECTIONS", "10001", "max_connections"),
        ("GUARD_WORKERS", "0", "workers"),
        ("GUARD_MAX_WAITERS", "-1", "max_waiters"),
        ("GUARD_REDIS_TIMEOUT", "-1", "redis_timeout"),
    ],
)
def test_a_bad_value_names_its_variable(name: str, value: str, field: str) -> None:
    with pytest.raises(UsageError) as ei:
        Settings.from_env({name: value})
    assert ei.value.field == field and name in str(ei.value)


def test_who_reads_what() -> None:
    server, sdk = settings.server_env(), settings.sdk_env()
    assert {"GUARD_REDIS_URL", "GUARD_ADMIN_TOKENS", "GUARD_WORKERS", "GUARD_CONFIG"} <= server
    assert {"GUARD_DISABLED", "GUARD_TIMEOUT", "GUARD_URL", "GUARD_TOKEN"} <= sdk
    assert "GUARD_DISABLED" not in server and "GUARD_WORKERS" not in sdk


def test_server_config_comes_from_settings() -> None:
    from guard.server import env_config

    cfg = env_config(Settings.from_env({"GUARD_CLIENT_TOKENS": "x,y", "GUARD_QUARANTINE": "1"}))
    assert cfg["CLIENT_TOKENS"] == ["x", "y"] and cfg["QUARANTINE"] is True
    assert cfg["REDIS_URL"] == settings.DEFAULT_SERVER_REDIS_URL
