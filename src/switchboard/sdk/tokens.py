"""The user token an SDK client presents, refreshed through the application's ``token_provider``.

SPEC §2.10: ``token_provider`` is an async callable returning a fresh user token. The SDK calls it when
it has no token and whenever the server says the token expired (events socket closed with 4001
``token_expired``, REST 401 ``token_expired``), then carries on. Concurrent callers that hit the same
expiry share one provider call.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from switchboard.errors import AuthenticationError

#: ``async def provider() -> str``: a fresh user token for the client's user.
TokenProvider = Callable[[], Awaitable[str]]


class UserTokenSource:
    """The current user token and, optionally, where a fresh one comes from."""

    def __init__(self, token: str | None, provider: TokenProvider | None = None) -> None:
        self._token = token
        self._provider = provider
        self._lock = asyncio.Lock()
        #: how many times the provider has been called
        self.refreshes = 0
        #: set when the server said the token expired and there is no provider to get another
        self.expired = False

    @property
    def token(self) -> str | None:
        return self._token

    @property
    def can_refresh(self) -> bool:
        return self._provider is not None

    async def get(self) -> str:
        """The token to present; calls the provider when there is none yet.

        Raises :class:`AuthenticationError` when there is neither a token nor a provider, or when the
        token expired and there is no provider.
        """
        if self.expired:
            raise AuthenticationError(
                "the user token expired and the client has no token_provider: connect a new client",
                code="token_expired",
            )
        token = self._token
        if token is not None:
            return token
        if self._provider is None:
            raise AuthenticationError(
                "no user token: give user_token or token_provider", code="token_missing"
            )
        return await self.refresh(None)

    async def refresh(self, stale: str | None) -> str:
        """A fresh token to replace ``stale`` (the one the server refused).

        When another caller already replaced ``stale``, its token is returned without a second provider
        call. Without a provider the source is marked expired and :class:`AuthenticationError` raised.
        """
        async with self._lock:
            if self._token is not None and self._token != stale:
                return self._token
            if self._provider is None:
                self.expired = True
                raise AuthenticationError(
                    "the user token expired and the client has no token_provider to get another",
                    code="token_expired",
                )
            try:
                token = await self._provider()
            except AuthenticationError:
                raise
            except Exception as exc:
                raise AuthenticationError(
                    f"token_provider failed: {exc!r}", code="token_provider_failed"
                ) from exc
            if not isinstance(token, str) or not token:
                raise AuthenticationError(
                    f"token_provider returned {type(token).__name__}, not a token string",
                    code="token_provider_failed",
                )
            self._token = token
            self.refreshes += 1
            return token


__all__ = ["TokenProvider", "UserTokenSource"]
