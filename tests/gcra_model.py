"""An independent model of guard's rate levels for the tests: a token bucket per level in
exact rational arithmetic (Fraction), not the GCRA arrival-time arithmetic the script uses.
A bucket of capacity `burst` refills at `rate` per second and starts full; a grant takes one
token from every level that has one; a level with less than one token refuses, and the wait
until it has one is (1 - tokens) / rate."""

from __future__ import annotations

import math
from fractions import Fraction

from guard.model import default_burst


class Bucket:
    def __init__(self, rate: float, burst: int | None) -> None:
        self.rate = Fraction(rate) / 1_000_000  # tokens per µs
        self.cap = Fraction(burst or default_burst(rate))
        self.tokens = self.cap
        self.at: int | None = None

    def wait_us(self, now_us: int) -> Fraction:
        """Refill to `now_us`; 0 when a token is there, else the µs until one is."""
        if self.at is not None:
            self.tokens = min(self.cap, self.tokens + (now_us - self.at) * self.rate)
        self.at = now_us
        return Fraction(0) if self.tokens >= 1 else (1 - self.tokens) / self.rate

    def take(self) -> None:
        self.tokens -= 1


def decide(
    levels: list[tuple[str, Bucket, bool]], now_us: int
) -> tuple[bool, str | None, int | None]:
    """levels: (scope, bucket, shadow) in the script's order (account, groups, function, key).
    -> (granted, refusing scope or shadow scope, retry_after_ms of a refusal). Takes the
    tokens of a grant (not at a shadow level that would refuse)."""
    waits = [(scope, b, shadow, b.wait_us(now_us)) for scope, b, shadow in levels]
    worst: tuple[str, Fraction] | None = None
    shadow_scope = None
    for scope, _, shadow, w in waits:
        if w > 0:
            if shadow:
                shadow_scope = shadow_scope or scope
            elif worst is None or w > worst[1]:
                worst = (scope, w)
    if worst is not None:
        return False, worst[0], max(1, math.ceil(worst[1] / 1000))
    for _, b, _, w in waits:
        if w == 0:
            b.take()
    return True, shadow_scope, None
