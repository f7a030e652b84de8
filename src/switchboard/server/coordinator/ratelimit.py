"""Per-user token-bucket rate limiting."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Protocol


class Limiter(Protocol):
    """A per-key rate limit as the coordinator's handlers use it (in process, or shared in Redis)."""

    async def acquire(self, key: str) -> float:
        """0.0 when the request may proceed (it is counted), else the seconds to wait before retrying."""
        ...


@dataclass
class _Bucket:
    tokens: float
    updated: float


class RateLimiter:
    """``rate`` requests per second on average, bursts of up to ``burst``; per key (user id)."""

    def __init__(self, rate: float, burst: int, *, max_keys: int = 100_000) -> None:
        if rate <= 0 or burst < 1:
            raise ValueError("rate must be > 0 and burst >= 1")
        self.rate = rate
        self.burst = burst
        self._buckets: dict[str, _Bucket] = {}
        self._max_keys = max_keys

    def check(self, key: str) -> float:
        """0.0 when the request may proceed, else the seconds to wait before retrying."""
        now = time.monotonic()
        bucket = self._buckets.get(key)
        if bucket is None:
            if len(self._buckets) >= self._max_keys:
                self._evict(now)
            bucket = self._buckets[key] = _Bucket(float(self.burst), now)
        bucket.tokens = min(float(self.burst), bucket.tokens + (now - bucket.updated) * self.rate)
        bucket.updated = now
        if bucket.tokens >= 1.0:
            bucket.tokens -= 1.0
            return 0.0
        return (1.0 - bucket.tokens) / self.rate

    async def acquire(self, key: str) -> float:
        """:meth:`check`, as the :class:`Limiter` the handlers await."""
        return self.check(key)

    def _evict(self, now: float) -> None:
        full_after = self.burst / self.rate
        for key in [k for k, b in self._buckets.items() if now - b.updated > full_after]:
            del self._buckets[key]
