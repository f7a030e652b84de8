"""Per-user token buckets kept in Redis, so every coordinator draws on the same budget.

The same rule as :class:`~switchboard.server.coordinator.ratelimit.RateLimiter` (``rate`` requests
per second on average, bursts of up to ``burst``), computed in one Lua script on Redis's clock so
coordinators with skewed clocks agree. Key ``<prefix>rl:<name>:<user id>`` (a hash of ``tokens`` and
``ts``), expiring once the bucket would be full again.
"""

from __future__ import annotations

from switchboard.server.coordinator.redis_store import RedisStore

#: KEYS: bucket. ARGV: rate (per s), burst. Returns the seconds to wait (0 when a token was taken).
_TAKE = """
local rate = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local b = redis.call('HMGET', KEYS[1], 'tokens', 'ts')
local tokens = tonumber(b[1]) or burst
local ts = tonumber(b[2]) or now
tokens = math.min(burst, tokens + math.max(0, now - ts) * rate)
local wait = 0
if tokens >= 1 then
  tokens = tokens - 1
else
  wait = (1 - tokens) / rate
end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'ts', tostring(now))
redis.call('EXPIRE', KEYS[1], math.ceil(burst / rate) + 1)
return tostring(wait)
"""


class RedisRateLimiter:
    """A :class:`~switchboard.server.coordinator.ratelimit.Limiter` shared through ``store``'s Redis.

    ``name`` separates limits (``"api"``, ``"socket_opens"``); ValueError unless ``rate`` > 0 and
    ``burst`` >= 1. Redis errors propagate (the request fails with 500 rather than going unlimited).
    """

    def __init__(self, store: RedisStore, name: str, rate: float, burst: int) -> None:
        if rate <= 0 or burst < 1:
            raise ValueError("rate must be > 0 and burst >= 1")
        self.rate = rate
        self.burst = burst
        self._store = store
        self._name = name
        self._take = store.redis.register_script(_TAKE)

    async def acquire(self, key: str) -> float:
        """0.0 when the request may proceed (it is counted), else the seconds to wait before retrying."""
        wait = await self._take(keys=[self._store.key("rl", self._name, key)], args=[self.rate, self.burst])
        return float(wait.decode() if isinstance(wait, bytes) else wait)
