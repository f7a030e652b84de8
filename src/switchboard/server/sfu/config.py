"""The SFU's settings (:class:`SfuConfig`), shared by the signalling base and both engines."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class SfuConfig:
    """SFU settings; the limits apply per signalling socket or per user (``docs/protocol.md``)."""

    api_secret: str
    #: how long a session whose socket dropped (without ``leave``) may come back, seconds
    reconnect_grace: float = 5.0
    #: seconds a new socket has to send a valid ``join``
    join_timeout: float = 10.0
    #: largest accepted WebSocket message, bytes (larger: close 1009)
    max_message_bytes: int = 128 * 1024
    #: malformed messages (text or binary) a socket may send before it is closed (4010)
    max_bad_messages: int = 50
    #: ``127.0.0.1`` / ``::1``: every peer connection gathers its only ICE candidate there, so media
    #: stays on loopback; None: every interface. Set from the advertised SFU URL with
    #: ``switchboard.media.local_ice.loopback_ice_address`` (the SDK applies the same rule to it).
    ice_loopback_address: str | None = None
    #: sustained messages per second per socket (token bucket; over it: close 4008)
    message_rate: float = 50.0
    #: messages a socket may send at once before the rate applies
    message_burst: int = 200
    #: SFU sessions one user may hold in one call (over it: join refused, close 4029)
    max_sessions_per_user_per_call: int = 4
    #: SFU sessions one user may hold across all calls on this SFU
    max_sessions_per_user: int = 128
    #: sockets that have not joined yet, all clients together (over it: close 1013)
    max_unjoined_sockets: int = 1000
    #: sockets from one remote address (the TCP peer) that have not joined yet (over it: close 1013)
    max_unjoined_sockets_per_address: int = 50
    #: where call recordings are written (None: ``switchboard-recordings`` in the system temp dir)
    recordings_dir: str | None = None
