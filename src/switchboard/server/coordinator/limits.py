"""What one client may cost the coordinator: the limits and their defaults, and a per-socket budget.

The defaults leave a well-behaved SDK client far below every limit (it sends one ``health.check``
every 10 s on one events socket) while bounding what a hostile or broken one can make the server do.
Every limit is listed with its default in ``docs/security.md``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from switchboard.errors import RateLimitedError
from switchboard.server.coordinator.store import Store


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
    #: events sockets from one remote address that have not sent their auth frame yet; one more is
    #: closed with 4030 ``too_many_connections`` (the TCP peer: a reverse proxy counts as one address).
    max_unauthenticated_sockets_per_address: int = 50
    #: events sockets that have not sent their auth frame yet, all addresses together (same close).
    max_unauthenticated_sockets: int = 1000
    #: calls one user may have created and not ended; one more ``get_or_create`` (or ``join`` with
    #: ``create``) of a new call is refused with 429 ``too_many_calls``.
    max_open_calls_per_user: int = 1000

    def __post_init__(self) -> None:
        if self.linger_time < 0:
            raise ValueError("linger_time must be >= 0")
        for name in ("header_timeout", "body_timeout", "auth_timeout", "frames_per_second"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be > 0")
        if self.socket_opens_per_second <= 0:
            raise ValueError("socket_opens_per_second must be > 0")
        for name in (
            "max_frame_bytes",
            "frame_burst",
            "max_sockets_per_user",
            "socket_open_burst",
            "max_unauthenticated_sockets_per_address",
            "max_unauthenticated_sockets",
            "max_open_calls_per_user",
        ):
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


async def check_open_calls(store: Store, limits: CoordinatorLimits, user_id: str, cid: str) -> None:
    """RateLimitedError (429 ``too_many_calls``) when ``user_id`` would create call ``cid`` while
    already holding ``max_open_calls_per_user`` calls they created and have not ended. Getting a call
    that exists is never refused. Concurrent creations may overshoot the cap by the few in flight."""
    if await store.get_call(cid) is not None:
        return
    held = await store.open_calls_created_by(user_id)
    if held >= limits.max_open_calls_per_user:
        raise RateLimitedError(
            f"{user_id!r} already has {held} open calls (the limit is {limits.max_open_calls_per_user}); "
            "end one (mark_ended) before creating another",
            code="too_many_calls",
        )


__all__ = ["CoordinatorLimits", "FrameBudget", "check_open_calls"]
