"""Per-socket limits on the SFU's signalling WebSocket: message rate and malformed messages."""

from __future__ import annotations

import time


class SocketGuard:
    """Counts one socket's messages against a token bucket and its malformed messages against a cap.

    ``rate`` messages per second on average with bursts of ``burst``; ``max_bad`` malformed messages
    (text that is not a valid message, or any binary frame) in the socket's lifetime.
    """

    def __init__(self, rate: float, burst: int, max_bad: int) -> None:
        if rate <= 0 or burst < 1 or max_bad < 0:
            raise ValueError("rate must be > 0, burst >= 1 and max_bad >= 0")
        self.rate = rate
        self.burst = burst
        self.max_bad = max_bad
        self.bad_messages = 0
        self._tokens = float(burst)
        self._updated = time.monotonic()

    def take(self) -> bool:
        """Account for one message; False when the socket is over its rate."""
        now = time.monotonic()
        self._tokens = min(float(self.burst), self._tokens + (now - self._updated) * self.rate)
        self._updated = now
        if self._tokens < 1.0:
            return False
        self._tokens -= 1.0
        return True

    def bad(self) -> bool:
        """Account for one malformed message; True when the socket is over its limit."""
        self.bad_messages += 1
        return self.bad_messages > self.max_bad
