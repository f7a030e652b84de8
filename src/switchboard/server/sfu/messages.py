"""Participant messages: low-latency JSON between the joined sessions of a call, over signalling.

A session sends ``send_message`` on its signalling WebSocket; the SFU relays it as
``participant_message`` (with the sender's user and session) to the other sessions of the same
call, or only to the ``session_ids`` it names. Nothing is stored: a session that is not connected
at that moment does not get it. Limits per session: ``data`` up to
:data:`switchboard.protocol.sfu.MAX_MESSAGE_DATA_BYTES` bytes of compact JSON (else a non-fatal
``message_too_large`` error) and :data:`~switchboard.protocol.sfu.MESSAGE_RATE` messages per second
with bursts of :data:`~switchboard.protocol.sfu.MESSAGE_BURST` (else ``message_rate_limited``); the
message is then dropped and the socket carries on. Why the signalling socket and not a data
channel: ``docs/protocol.md``.
"""

from __future__ import annotations

import asyncio
import json
import weakref
from typing import Any, Protocol

from switchboard.protocol import sfu as p
from switchboard.server.sfu.limits import SocketGuard
from switchboard.server.sfu.sessions import CallSessions


def message_data_bytes(data: dict[str, object]) -> int:
    """The size the limit applies to: compact JSON, UTF-8, bytes."""
    return len(json.dumps(data, separators=(",", ":"), ensure_ascii=False).encode())


class Sender(Protocol):
    """A session that sends participant messages, whatever the engine (embedded or Janus)."""

    @property
    def user_id(self) -> str: ...
    @property
    def session_id(self) -> str: ...
    @property
    def room(self) -> CallSessions[Any]: ...
    async def error(self, code: str, message: str, *, fatal: bool = False) -> None: ...


class MessageRelay:
    """Relays participant messages within a room, holding each sending session's rate budget.

    Engine-neutral: signalling only, so both the embedded SFU and the Janus engine use it.
    """

    def __init__(
        self,
        *,
        rate: float = p.MESSAGE_RATE,
        burst: int = p.MESSAGE_BURST,
        max_bytes: int = p.MAX_MESSAGE_DATA_BYTES,
    ) -> None:
        self.rate = rate
        self.burst = burst
        self.max_bytes = max_bytes
        self._budgets: weakref.WeakKeyDictionary[Sender, SocketGuard] = weakref.WeakKeyDictionary()

    async def relay(self, sender: Sender, message: p.SendMessage) -> None:
        """Send ``message`` to its recipients in ``sender``'s room, or answer the sender an error."""
        budget = self._budgets.get(sender)
        if budget is None:
            budget = self._budgets[sender] = SocketGuard(self.rate, self.burst, 0)
        if not budget.take():
            await sender.error(
                "message_rate_limited",
                f"more than {self.rate:g} participant messages per second; this one was dropped",
            )
            return
        size = message_data_bytes(message.data)
        if size > self.max_bytes:
            await sender.error(
                "message_too_large",
                f"participant message is {size} bytes of JSON; the limit is {self.max_bytes}; dropped",
            )
            return
        room = sender.room
        wanted = set(message.session_ids) if message.session_ids is not None else None
        if wanted is not None and (unknown := wanted - set(room.participants)):
            await sender.error("unknown_session", f"no session {sorted(unknown)!r} in this call; not sent")
            return
        out = p.ParticipantMessage(user_id=sender.user_id, session_id=sender.session_id, data=message.data)
        await asyncio.gather(
            *(q.send(out) for q in room.others(sender) if wanted is None or q.session_id in wanted),
            return_exceptions=True,
        )
