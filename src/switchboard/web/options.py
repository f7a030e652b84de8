"""What the coordinator's browser surface allows: CORS origins and development tokens."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class WebOptions:
    """Browser-facing settings of one coordinator.

    ``cors_origins``: None allows any origin (safe: auth is a bearer token, never a cookie; SPEC §3.1);
    a tuple restricts cross-origin requests to exactly those origins (``"https://app.example.com"``).
    ``development_tokens``: the page may ask the server for a token for any user
    (``POST /dev/token``); only for a server running with a development key pair, never otherwise.
    """

    cors_origins: tuple[str, ...] | None = None
    development_tokens: bool = False

    def origin_allowed(self, origin: str) -> bool:
        return self.cors_origins is None or origin in self.cors_origins
