"""What one client may cost the coordinator: the limits and their defaults, and a per-socket budget.

The defaults leave a well-behaved SDK client far below every limit (it sends one ``health.check``
every 10 s on one events socket) while bounding what a hostile or broken one can make the server do.
Every limit is listed with its default in ``docs/security.md``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass


@dataclass(frozen=True)
class CoordinatorLimits:
    """Per-connection and per-user limits of the coordinator's HTTP server and events WebSocket."""

    #: seconds a connection may take to send a complete request head (request line + headers), counted
    #: from its opening or from the previous response; also the idle keep-alive time. Then it is closed.
    header_timeout: float = 10.0
    #: seconds a request may take to send its whole body once its head arrived; then 408.
    body_timeout: float = 10.0
    #: seconds the server goes on reading (and discarding) a body it answered without reading (408,
    #: 413, 401...) before it closes the connection, so the client sees the answer rather than a reset.
    linger_time: float = 2.0
    #: seconds an events socket may take to send its auth frame; then it is closed with 4001.
    auth_timeout: float = 5.0
    #: the largest frame (bytes) accepted on an events socket; a larger one closes it with 1009.
    max_frame_bytes: int = 64 * 1024
    #: frames per second one events socket may send on average (token bucket) ...
    frames_per_second: float = 10.0
    #: ... in bursts of up to this many; the first frame over the budget closes the socket with 4029.
    frame_burst: int = 20
    #: open events sockets per user; one more is closed with 4030.
    max_sockets_per_user: int = 10
    #: events-socket opens per second per user on average (token bucket) ...
    socket_opens_per_second: float = 1.0
    #: ... in bursts of up to this many; one more is closed with 4029.
    socket_open_burst: int = 10

    def __post_init__(self) -> None:
        if self.linger_time < 0:
            raise ValueError("linger_time must be >= 0")
        for name in ("header_timeout", "body_timeout", "auth_timeout", "frames_per_second"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be > 0")
        if self.socket_opens_per_second <= 0:
            raise ValueError("socket_opens_per_second must be > 0")
        for name in ("max_frame_bytes", "frame_burst", "max_sockets_per_user", "socket_open_burst"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1")


class FrameBudget:
    """A token bucket: ``rate`` frames per second on average, bursts of up to ``burst``."""

    def __init__(self, rate: float, burst: int) -> None:
        self._rate = rate
        self._burst = float(burst)
        self._tokens = float(burst)
        self._updated = time.monotonic()

    def take(self) -> bool:
        """Spend one frame; False when the budget is exhausted."""
        now = time.monotonic()
        self._tokens = min(self._burst, self._tokens + (now - self._updated) * self._rate)
        self._updated = now
        if self._tokens < 1.0:
            return False
        self._tokens -= 1.0
        return True


__all__ = ["CoordinatorLimits", "FrameBudget"]
