"""Sockets that have not authenticated yet, counted per remote address and in all.

Both signalling endpoints (the coordinator's events socket before its auth frame, the SFU's socket
before its ``join`` is admitted) hold one slot per such socket, so one address opening sockets and
never authenticating cannot use up the room left for everyone else.
"""

from __future__ import annotations


class AddressSlots:
    """Counts open unauthenticated sockets per remote address (the TCP peer) and in total."""

    def __init__(self) -> None:
        self._by_address: dict[str, int] = {}
        self._total = 0

    @property
    def total(self) -> int:
        """Unauthenticated sockets open now, all addresses together."""
        return self._total

    def count(self, address: str) -> int:
        """Unauthenticated sockets open now from ``address``."""
        return self._by_address.get(address, 0)

    def acquire(self, address: str, *, per_address: int, total: int) -> bool:
        """Take a slot for a new socket from ``address``; False (nothing taken) when ``address``
        already holds ``per_address`` slots or all addresses together hold ``total``."""
        if self._total >= total or self._by_address.get(address, 0) >= per_address:
            return False
        self._by_address[address] = self._by_address.get(address, 0) + 1
        self._total += 1
        return True

    def release(self, address: str) -> None:
        """Give back the slot of a socket from ``address`` (it authenticated, or it closed)."""
        held = self._by_address.get(address, 0)
        if held <= 0:
            return
        self._total -= 1
        if held == 1:
            del self._by_address[address]
        else:
            self._by_address[address] = held - 1


__all__ = ["AddressSlots"]
