"""Local media stays on loopback: the one rule the SDK and the SFU both apply (SPEC §3.1).

**The rule.** Media of a call stays on loopback when the SFU URL handed to clients (the ``url`` of
the join response's SFU credentials; ``EmbeddedServer.sfu_url``) names a loopback host: an address
in 127.0.0.0/8, ``::1``, or the name ``localhost``. Then both ends of every peer connection gather
exactly one ICE host candidate on the loopback address of that family (``127.0.0.1`` for IPv4 and
``localhost``, ``::1`` for IPv6) and no other candidate, so every connectivity check, DTLS and
RTP/RTCP packet of the call goes between two loopback sockets. Any other SFU URL leaves ICE as
aiortc/aioice do it (every interface address except loopback).

Both sides derive the decision from the same URL, so they always agree: the SDK from the URL it
connects to, the SFU from the URL it advertises (``SfuConfig.ice_loopback_address``, set by
``EmbeddedServer`` from the address it bound). A server bound to a loopback address but advertised
under a public URL (a reverse proxy) is therefore *not* local, as it must not be.

aioice never gathers loopback addresses by itself; the hook that makes a peer connection gather on
a given address is :func:`switchboard.media.rtp_hooks.restrict_ice_host_addresses`.
"""

from __future__ import annotations

import ipaddress
from typing import Final
from urllib.parse import urlsplit

from aiortc import RTCConfiguration, RTCPeerConnection

from switchboard.media.rtp_hooks import restrict_ice_host_addresses

__all__ = ["IPV4_LOOPBACK", "IPV6_LOOPBACK", "create_peer_connection", "loopback_ice_address"]

IPV4_LOOPBACK: Final = "127.0.0.1"
IPV6_LOOPBACK: Final = "::1"


def loopback_ice_address(sfu_url: str) -> str | None:
    """The loopback address local media uses for an SFU at ``sfu_url``, or None if it is not local.

    ``sfu_url`` is a URL (``ws://127.0.0.1:4001/sfu``, ``wss://[::1]/sfu``) or a bare host. Returns
    ``"127.0.0.1"`` for a host in 127.0.0.0/8 or ``localhost`` (any case), ``"::1"`` for ``::1``,
    None for anything else (other addresses, other names, the wildcard ``0.0.0.0``, a malformed
    URL). Names other
    than ``localhost`` are never resolved: the decision must not depend on DNS.
    """
    try:
        host = urlsplit(sfu_url).hostname if "//" in sfu_url else sfu_url.strip("[]")
    except ValueError:  # a malformed URL (``ws://[::1/sfu``) is not a local SFU
        return None
    if not host:
        return None
    if host.lower().rstrip(".") == "localhost":
        return IPV4_LOOPBACK
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return None
    if not address.is_loopback:
        return None
    return IPV4_LOOPBACK if address.version == 4 else IPV6_LOOPBACK


def create_peer_connection(*, loopback_address: str | None) -> RTCPeerConnection:
    """A peer connection with no STUN/TURN server, its ICE kept on ``loopback_address`` if given.

    ``loopback_address`` is what :func:`loopback_ice_address` returned for the SFU URL: with an
    address, the connection gathers a single host candidate there (and nothing else); with None,
    it gathers on every interface as aiortc does. ``ValueError`` if the address is not an IP
    address literal.
    """
    pc = RTCPeerConnection(configuration=RTCConfiguration(iceServers=[]))
    if loopback_address is not None:
        restrict_ice_host_addresses(pc, [loopback_address])
    return pc
