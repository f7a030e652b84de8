"""Close codes of the coordinator's events WebSocket.

RFC 6455 §7.4.2 reserves 4000-4999 for applications. The server sends a JSON ``error`` frame
(``{"type": "error", "code", "message"}``) before closing with one of these where it can, and puts the
error code in the close reason.
"""

from __future__ import annotations

from enum import IntEnum


class EventsCloseCode(IntEnum):
    """Why the coordinator closed an events socket (see ``docs/security.md``)."""

    #: the server is shutting down (RFC 6455 "going away"); reconnect later.
    GOING_AWAY = 1001
    #: a frame larger than the server's limit (RFC 6455 "message too big").
    MESSAGE_TOO_BIG = 1009
    #: the auth frame is malformed (not JSON, wrong shape).
    BAD_REQUEST = 4000
    #: no auth frame in time, or the API key or user token is missing, invalid or expired
    #: (reason ``token_expired`` when the token ran out while the socket was open).
    UNAUTHENTICATED = 4001
    #: the client answered no health check for three intervals.
    HEALTH_CHECK_TIMEOUT = 4002
    #: the client reads events too slowly; it replays what it missed on reconnect.
    TOO_SLOW = 4008
    #: too many frames per second on this socket, or too many socket opens per second by this user.
    RATE_LIMITED = 4029
    #: this user already has the maximum number of open events sockets, or too many sockets wait for
    #: their auth frame (from this address, or in all).
    TOO_MANY_CONNECTIONS = 4030


#: The close reason the server gives when a user token expires on an open socket (SPEC §2.10).
TOKEN_EXPIRED_REASON = "token_expired"

__all__ = ["TOKEN_EXPIRED_REASON", "EventsCloseCode"]
