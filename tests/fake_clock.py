"""A test-only server clock for the lease scripts: `use_fake_clock` makes every script read
"now" from the string key ``guard:{ns}:clock`` ("<seconds> <microseconds>") when it exists,
instead of Redis TIME. Only the scripts built by a `RedisStore` made while the patch is on
see it; the scripts guard ships are not changed."""

from __future__ import annotations

import pytest

from guard import keys, scripts

TIME_LINE = "local t = redis.call('TIME')\n"
FAKE = (
    TIME_LINE + "local _fc = redis.call('GET', string.sub(USE, 1, -4) .. 'clock')\n"
    "if _fc then t = {string.match(_fc, '^(%d+) (%d+)$')} end\n"
)


def use_fake_clock(monkeypatch: pytest.MonkeyPatch) -> None:
    real = scripts.read

    def read(name: str) -> str:
        text = real(name)
        if name == "common":
            assert TIME_LINE in text
            text = text.replace(TIME_LINE, FAKE)
        return text

    monkeypatch.setattr(scripts, "read", read)


def clock_key(ns: str) -> str:
    return f"{keys.PREFIX}:{{{ns}}}:clock"


def set_clock(client: object, ns: str, now_us: int) -> None:
    client.set(clock_key(ns), f"{now_us // 1_000_000} {now_us % 1_000_000}")  # type: ignore[attr-defined]
