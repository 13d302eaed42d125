"""guard — concurrency limits for serverless functions, enforced atomically in Redis.

g = guard.Guard.from_env()

@g.limit()                      # name defaults to AWS_LAMBDA_FUNCTION_NAME
def handler(event, context): ...
"""

from __future__ import annotations

from .client import Guard
from .errors import (
    ConflictError,
    GuardError,
    GuardUnavailable,
    NotFound,
    PoolExhausted,
    ProtocolMismatch,
    StoreError,
    StoreReset,
    Throttled,
    UsageError,
)
from .lease import Lease

__all__ = [
    "ConflictError",
    "Guard",
    "GuardError",
    "GuardUnavailable",
    "Lease",
    "NotFound",
    "PoolExhausted",
    "ProtocolMismatch",
    "StoreError",
    "StoreReset",
    "Throttled",
    "UsageError",
]
__version__ = "0.1.0"
