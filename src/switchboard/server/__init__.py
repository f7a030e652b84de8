"""The switchboard server: coordinator (REST + events) and SFU, embedded or as ``switchboard serve``."""

from switchboard.server.coordinator.ice_servers import IceServerSettings
from switchboard.server.embedded import EmbeddedServer

__all__ = ["EmbeddedServer", "IceServerSettings"]
