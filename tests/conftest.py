"""Shared fixtures: a real embedded server and real clients connected to it over real sockets."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest

from switchboard import ClientOptions, User, VideoClient
from switchboard.media.analysis import tone_levels_dbfs
from switchboard.protocol import coordinator as m
from switchboard.sdk.call import Call
from switchboard.server import EmbeddedServer

ClientFactory = Callable[..., Awaitable[VideoClient]]


#: the media engine the ``server`` fixture runs and the address it listens on; the janus engine needs
#: a non-loopback address, so ``tests/test_janus_engine.py`` sets both and runs test files inside a
#: private network namespace
TEST_ENGINE = os.environ.get("SWITCHBOARD_TEST_ENGINE", "embedded")
TEST_HOST = os.environ.get("SWITCHBOARD_TEST_HOST", "127.0.0.1")


@pytest.fixture
async def server() -> AsyncIterator[EmbeddedServer]:
    async with EmbeddedServer(host=TEST_HOST, engine=TEST_ENGINE) as srv:
        yield srv


@pytest.fixture
async def make_client(server: EmbeddedServer) -> AsyncIterator[ClientFactory]:
    clients: list[VideoClient] = []

    async def factory(user_id: str, *, connect: bool = True, **options: object) -> VideoClient:
        client = VideoClient(
            server.api_key,
            user=User.regular(user_id, name=user_id.title()),
            user_token=server.create_token(user_id),
            options=ClientOptions(base_url=server.url, **options),  # type: ignore[arg-type]
        )
        if connect:
            await client.connect()
        clients.append(client)
        return client

    yield factory
    for client in clients:
        await client.disconnect()


# ---------------------------------------------------------------- waiting for state and events


async def until(predicate: Any, what: str, timeout: float = 10.0, *, interval: float = 0.02) -> None:  # noqa: ASYNC109
    """Poll ``predicate`` every ``interval`` s until it is true; AssertionError naming ``what`` after
    ``timeout`` s."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():
        if loop.time() > deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
        await asyncio.sleep(interval)


def collect(call: Call, event_type: str) -> list[m.Event]:
    """Every event of ``event_type`` ``call`` emits from now on, in order."""
    received: list[m.Event] = []
    call.on(event_type, received.append)
    return received


# ---------------------------------------------------------------- audio observation helpers

AUDIBLE_DBFS = -30.0
#: every 100 ms window of a call that must never fall silent carries its tone above this
THROUGHOUT_DBFS = -40.0
SILENT_DBFS = -60.0


def named_levels(samples: npt.NDArray[np.float32], tones: dict[str, float]) -> dict[str, float]:
    """Level (dBFS) of each named tone in ``samples``."""
    return dict(zip(tones, tone_levels_dbfs(samples, list(tones.values())), strict=True))


def _matches(levels: dict[str, float], audible: set[str]) -> bool:
    return all((levels[n] > AUDIBLE_DBFS) if n in audible else (levels[n] < SILENT_DBFS) for n in levels)


async def wait_heard(
    client: VideoClient,
    tones: dict[str, float],
    *,
    audible: set[str],
    timeout: float = 10.0,  # noqa: ASYNC109
    window: float = 0.3,
) -> dict[str, float]:
    """Wait until the speaker carries exactly the ``audible`` tones (the others silent).

    Only audio played *after* this call counts, over a window of ``window`` seconds, so a change made
    just before is really observed rather than read from what was playing before it.
    """
    speaker = client.capture_speaker
    start = speaker.total_samples
    need = int(window * 48000)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    levels: dict[str, float] = {}
    while loop.time() < deadline:
        await asyncio.sleep(0.05)
        end = speaker.total_samples
        if end - start < need:
            continue
        levels = named_levels(speaker.samples_range(end - need, end), tones)
        if _matches(levels, audible):
            return levels
    rounded = {k: round(v, 1) for k, v in levels.items()}
    raise AssertionError(f"{client.user.id} hears {rounded}; expected audible={sorted(audible)}")


async def hears_throughout(client: VideoClient, name: str, tone: float, *, duration: float) -> None:
    """For ``duration`` seconds from now, every 100 ms of ``client``'s playout carries ``tone``.

    What starvation takes away is the sound itself (a starved call plays silence, below -100 dBFS), so
    each window must carry the tone above ``THROUGHOUT_DBFS`` (-40 dBFS, the audibility bar of the
    browser tests): one concealed packet in a window on a loaded machine dips it to about -37 dBFS,
    which is a glitch, not silence.
    """
    speaker = client.capture_speaker
    start = speaker.total_samples
    await asyncio.sleep(duration)
    step = 4800
    for begin in range(start, speaker.total_samples - step + 1, step):
        level = named_levels(speaker.samples_range(begin, begin + step), {name: tone})[name]
        assert level > THROUGHOUT_DBFS, (
            f"{client.user.id} hears {name} at {level:.1f} dBFS at +{(begin - start) / 48000:.1f}s"
        )


async def stays_heard(
    client: VideoClient, tones: dict[str, float], *, audible: set[str], duration: float = 0.6
) -> None:
    """For ``duration`` seconds from now, every 100 ms of playout carries exactly the ``audible`` tones."""
    speaker = client.capture_speaker
    start = speaker.total_samples
    await asyncio.sleep(duration)
    step = 4800
    for begin in range(start, speaker.total_samples - step + 1, step):
        levels = named_levels(speaker.samples_range(begin, begin + step), tones)
        assert _matches(levels, audible), (
            f"{client.user.id} hears { ({k: round(v, 1) for k, v in levels.items()}) } "
            f"at +{(begin - start) / 48000:.1f}s; expected audible={sorted(audible)}"
        )
