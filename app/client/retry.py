"""When and how long the client waits before asking again."""
from __future__ import annotations

import random
from dataclasses import dataclass, field

import httpx


@dataclass(frozen=True)
class Backoff:
    """Exponential backoff with full jitter: ``attempts`` tries in all.

    Retried: no connection or no answer (the worker restarting, a rebalance
    moving the key's owner) and 5xx answers (503: not ready, still restoring,
    the owner unreachable).  A 4xx is the request's fault and is never retried."""
    attempts: int = 4
    base_s: float = 0.1
    max_s: float = 2.0
    # Jitter spreads clients that failed together; its own generator, so no
    # client shares (or reseeds) the process's.
    rng: random.Random = field(default_factory=random.Random, compare=False, repr=False)

    def delay(self, attempt: int) -> float:
        """Seconds to wait after failed attempt number ``attempt`` (0-based)."""
        return self.rng.uniform(0, min(self.max_s, self.base_s * 2 ** attempt))


def retryable_status(status: int) -> bool:
    return status >= 500


RETRYABLE_ERRORS: tuple[type[Exception], ...] = (httpx.TransportError,)
