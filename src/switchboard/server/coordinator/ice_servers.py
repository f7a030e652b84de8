"""The STUN/TURN servers handed out with every SFU credential (``credentials.ice_servers``).

TURN credentials are time-limited and minted per user with a secret shared with the TURN server
(the "TURN REST API" of draft-uberti-behave-turn-rest-00, the shared-secret scheme RFC 7635 builds
on; coturn calls it ``use-auth-secret`` / ``static-auth-secret``):

* username   = ``"<expiry unix time>:<user id>"``
* credential = ``base64(HMAC-SHA1(secret, username))``

so the TURN server checks them without asking the coordinator, and they stop working at the expiry.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from dataclasses import dataclass

from switchboard.protocol import coordinator as m

_STUN_SCHEMES = ("stun:", "stuns:")
_TURN_SCHEMES = ("turn:", "turns:")


@dataclass(frozen=True)
class IceServerSettings:
    """Which ICE servers clients get.

    ``stun_urls``: e.g. ``("stun:stun.example.com:3478",)`` (RFC 7064 URIs).
    ``turn_urls``: e.g. ``("turn:turn.example.com:3478?transport=udp", "turns:turn.example.com:5349")``
    (RFC 7065 URIs); they need ``turn_secret``, the TURN server's shared secret.
    ``turn_ttl``: lifetime of the TURN credentials, seconds (default one day: a call may last hours,
    and a resumed session gets fresh ones with its fresh SFU token).

    Raises:
        ValueError: a URL with the wrong scheme, TURN URLs without a secret, a TTL not above 0.
    """

    stun_urls: tuple[str, ...] = ()
    turn_urls: tuple[str, ...] = ()
    turn_secret: str | None = None
    turn_ttl: float = 86400.0

    def __post_init__(self) -> None:
        for url in self.stun_urls:
            if not url.startswith(_STUN_SCHEMES):
                raise ValueError(f"STUN URL {url!r} must start with stun: or stuns:")
        for url in self.turn_urls:
            if not url.startswith(_TURN_SCHEMES):
                raise ValueError(f"TURN URL {url!r} must start with turn: or turns:")
        if self.turn_urls and not self.turn_secret:
            raise ValueError("TURN URLs need the TURN server's shared secret (turn_secret)")
        if not self.turn_ttl > 0:
            raise ValueError(f"turn_ttl must be above 0 seconds, not {self.turn_ttl!r}")


def turn_credentials(secret: str, user_id: str, ttl: float, *, now: float | None = None) -> tuple[str, str]:
    """``(username, credential)`` for ``user_id``, valid for ``ttl`` seconds from ``now`` (unix time)."""
    expiry = int((time.time() if now is None else now) + ttl)
    username = f"{expiry}:{user_id}"
    digest = hmac.new(secret.encode(), username.encode(), hashlib.sha1).digest()
    return username, base64.b64encode(digest).decode()


def ice_servers_for(
    settings: IceServerSettings, user_id: str, *, now: float | None = None
) -> list[m.IceServer]:
    """The ICE servers for one credential of ``user_id``: STUN as is, TURN with fresh credentials."""
    servers: list[m.IceServer] = []
    if settings.stun_urls:
        servers.append(m.IceServer(urls=list(settings.stun_urls)))
    if settings.turn_urls and settings.turn_secret:
        username, credential = turn_credentials(settings.turn_secret, user_id, settings.turn_ttl, now=now)
        servers.append(m.IceServer(urls=list(settings.turn_urls), username=username, credential=credential))
    return servers
