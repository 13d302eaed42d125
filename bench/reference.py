"""The bare redis-py semaphore that guard is measured against.

One level only (no groups, no account), one sorted set per semaphore: member = lease id,
score = expiry time in milliseconds of Redis server time. It is the least a correct
Redis-backed limiter with expiring leases has to do, so the gap between it and guard is the
price of guard's extra levels, counters and bookkeeping.

acquire is one Lua script (one round trip); release is a plain ``ZREM`` (one round trip).
"""

from __future__ import annotations

from typing import Any

import redis

# KEYS[1] - the semaphore's sorted set (member: lease id, score: expiry in ms, server time)
# ARGV[1] - limit (max holders)
# ARGV[2] - lease id
# ARGV[3] - ttl in milliseconds
# returns 1 if the lease is held (granted now), 0 if the semaphore is full
ACQUIRE_LUA = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if redis.call('ZCARD', KEYS[1]) < tonumber(ARGV[1]) then
  redis.call('ZADD', KEYS[1], now + tonumber(ARGV[3]), ARGV[2])
  return 1
end
return 0
"""


class ReferenceSemaphore:
    """A one-level counting semaphore with expiring leases on one Redis sorted set.

    Limits are passed by the client here (unlike guard, which reads them inside the script);
    that is one of the things that keeps this reference minimal.
    """

    def __init__(self, client: redis.Redis, key: str, limit: int) -> None:
        if limit < 0:
            raise ValueError("limit must be >= 0")
        self.client = client
        self.key = key
        self.limit = limit
        self._acquire = client.register_script(ACQUIRE_LUA)

    def acquire(self, lease_id: str, ttl: float) -> bool:
        """Take a slot for ``ttl`` seconds; False when ``limit`` leases are already held."""
        ttl_ms = max(1, int(ttl * 1000))
        return bool(self._acquire(keys=[self.key], args=[self.limit, lease_id, ttl_ms]))

    def acquire_in(self, pipe: Any, lease_id: str, ttl: float) -> None:
        """Queue an acquire on a pipeline (used to fill the set for the held-lease benchmark)."""
        ttl_ms = max(1, int(ttl * 1000))
        self._acquire(keys=[self.key], args=[self.limit, lease_id, ttl_ms], client=pipe)

    def release(self, lease_id: str) -> None:
        """Give the slot back; releasing a lease that is not held is a no-op."""
        self.client.zrem(self.key, lease_id)
