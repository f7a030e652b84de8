"""The Janus media engine: switchboard's SFU signalling in front of a Janus VideoRoom (``docs/janus.md``)."""

from switchboard.server.sfu_janus.janus_process import JanusConfig, JanusProcess
from switchboard.server.sfu_janus.server import JanusSfuServer

__all__ = ["JanusConfig", "JanusProcess", "JanusSfuServer"]
