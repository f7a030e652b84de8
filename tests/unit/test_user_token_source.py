"""UserTokenSource: when the SDK asks the application's token_provider for a token (pure logic)."""

from __future__ import annotations

import asyncio

import pytest

from switchboard.errors import AuthenticationError
from switchboard.sdk.tokens import UserTokenSource


async def test_concurrent_refreshes_of_one_stale_token_share_one_provider_call() -> None:
    calls = 0

    async def provider() -> str:
        nonlocal calls
        calls += 1
        await asyncio.sleep(0.01)
        return f"t{calls}"

    source = UserTokenSource("t0", provider)
    fresh = await asyncio.gather(*(source.refresh("t0") for _ in range(5)))
    assert fresh == ["t1"] * 5 and calls == 1
    assert await source.refresh("t1") == "t2" and calls == 2  # a later expiry gets another
    assert source.token == "t2" and source.refreshes == 2


async def test_no_token_calls_the_provider_once_then_reuses_it() -> None:
    calls = 0

    async def provider() -> str:
        nonlocal calls
        calls += 1
        return "fresh"

    source = UserTokenSource(None, provider)
    assert [await source.get(), await source.get()] == ["fresh", "fresh"] and calls == 1


async def test_without_provider_an_expiry_marks_the_source_expired() -> None:
    source = UserTokenSource("t0")
    assert await source.get() == "t0"
    with pytest.raises(AuthenticationError) as info:
        await source.refresh("t0")
    assert info.value.code == "token_expired" and source.expired
    with pytest.raises(AuthenticationError, match="no token_provider"):
        await source.get()


@pytest.mark.parametrize("returned", ["", None, 42])
async def test_a_provider_returning_no_token_is_an_authentication_error(returned: object) -> None:
    async def provider() -> str:
        return returned  # type: ignore[return-value]

    with pytest.raises(AuthenticationError) as info:
        await UserTokenSource(None, provider).get()
    assert info.value.code == "token_provider_failed"


async def test_neither_token_nor_provider_is_token_missing() -> None:
    with pytest.raises(AuthenticationError) as info:
        await UserTokenSource(None).get()
    assert info.value.code == "token_missing"
