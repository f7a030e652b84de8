"""What the demo's scenarios need of a server: the in-process :class:`EmbeddedServer` or a
:class:`~switchboard.server.cluster.LocalCluster` (``switchboard demo --cluster``)."""

from __future__ import annotations

from typing import Protocol


class DemoServer(Protocol):
    """Where clients connect (``url``), the API key, and user tokens signed with the secret."""

    @property
    def url(self) -> str: ...

    @property
    def api_key(self) -> str: ...

    def create_token(self, user_id: str, ttl: float | None = None) -> str: ...
