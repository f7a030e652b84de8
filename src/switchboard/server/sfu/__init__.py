"""The embedded SFU: WebRTC signalling and encoded media forwarding (never decodes, never re-encodes)."""

from switchboard.server.sfu.server import SfuConfig, SfuServer

__all__ = ["SfuConfig", "SfuServer"]
