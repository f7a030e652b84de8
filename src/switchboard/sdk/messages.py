"""Custom events and participant messages as the SDK sends and receives them.

Two ways for an application to send its own data to the others in a call:

- :meth:`Call.send_custom_event` (through the coordinator): to everyone in the call, members
  included, kept in the event log (a client that reconnects gets the ones it missed); received as
  ``custom`` events (:class:`switchboard.protocol.coordinator.CustomEvent`). Up to
  :data:`~switchboard.protocol.coordinator.MAX_CUSTOM_EVENT_BYTES` bytes of JSON.
- :meth:`Call.send_message` (through the SFU's signalling socket): to the other joined sessions only,
  relayed at once and never stored; received as ``participant_message`` events
  (:class:`ParticipantMessageEvent`). Up to :data:`~switchboard.protocol.sfu.MAX_MESSAGE_DATA_BYTES`
  bytes of JSON, :data:`~switchboard.protocol.sfu.MESSAGE_RATE` per second.

The SDK checks size and rate before sending (the servers enforce the same limits).
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from typing import Any, Literal

from switchboard.errors import InvalidRequestError, PayloadTooLargeError, RateLimitedError
from switchboard.protocol import sfu as p
from switchboard.protocol.coordinator import Event, utcnow

__all__ = ["MessageBudget", "ParticipantMessageEvent", "json_object"]


class ParticipantMessageEvent(Event):
    """A participant message from ``session_id`` of ``user_id``: ``call.on("participant_message", cb)``."""

    type: Literal["participant_message"] = "participant_message"
    user_id: str
    session_id: str
    data: dict[str, Any]

    @classmethod
    def from_sfu(cls, cid: str, message: p.ParticipantMessage) -> ParticipantMessageEvent:
        return cls(
            created_at=utcnow(),
            cid=cid,
            user_id=message.user_id,
            session_id=message.session_id,
            data=message.data,
        )


def json_object(data: object, *, what: str, max_bytes: int) -> dict[str, Any]:
    """``data`` as a JSON object of at most ``max_bytes`` bytes (compact JSON, UTF-8).

    Raises InvalidRequestError when it is not a mapping with string keys that JSON can encode,
    PayloadTooLargeError when it is too large.
    """
    if not isinstance(data, Mapping):
        raise InvalidRequestError(f"{what} must be a dict (a JSON object), not {type(data).__name__}")
    try:
        encoded = json.dumps(dict(data), separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise InvalidRequestError(f"{what} cannot be sent as JSON: {exc}") from exc
    if any(not isinstance(key, str) for key in data):
        raise InvalidRequestError(f"{what} keys must be strings")
    size = len(encoded.encode())
    if size > max_bytes:
        raise PayloadTooLargeError(f"{what} is {size} bytes of JSON; the limit is {max_bytes}")
    decoded: dict[str, Any] = json.loads(encoded)
    return decoded


class MessageBudget:
    """The client's side of the SFU's message rate: ``rate`` per second, bursts of ``burst``."""

    def __init__(self, rate: float = p.MESSAGE_RATE, burst: int = p.MESSAGE_BURST) -> None:
        self.rate = rate
        self.burst = burst
        self._tokens = float(burst)
        self._updated = time.monotonic()

    def take(self) -> None:
        """Account for one message; RateLimitedError (with ``retry_after``) when over the rate."""
        now = time.monotonic()
        self._tokens = min(float(self.burst), self._tokens + (now - self._updated) * self.rate)
        self._updated = now
        if self._tokens < 1.0:
            wait = (1.0 - self._tokens) / self.rate
            raise RateLimitedError(
                f"more than {self.rate:g} participant messages per second; retry in {wait:.2f}s",
                retry_after=wait,
            )
        self._tokens -= 1.0
