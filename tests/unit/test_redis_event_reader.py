"""A coordinator's background loops on Redis (the event-stream reader, the ring sweeper) when it goes away."""

from __future__ import annotations

import asyncio
import logging
from types import SimpleNamespace
from typing import Any, cast

import pytest
from redis.exceptions import ConnectionError as RedisConnectionError

from switchboard.server.coordinator.redis_events import RedisEventHub
from switchboard.server.coordinator.ringing import Ringer


class _FlakyRedis:
    """xread fails ``failures`` times as a stopped Redis does, then answers nothing."""

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.reads = 0
        self.answered = asyncio.Event()

    def client(self) -> _FlakyRedis:
        """The reader's own connection (one client here)."""
        return self

    async def client_id(self) -> int:
        if self.reads < self.failures:
            self.reads += 1
            raise RedisConnectionError("Error 111 connecting to redis:6379. Connection refused.")
        return 7

    async def xread(self, streams: dict[str, str], **_: Any) -> list[Any]:
        self.reads += 1
        if self.reads <= self.failures:
            raise RedisConnectionError("Error 111 connecting to redis:6379. Connection refused.")
        self.answered.set()
        await asyncio.sleep(0.05)
        return []


class _Store:
    def __init__(self, redis: _FlakyRedis) -> None:
        self.redis = redis
        self.events_key = "sb:events"


async def test_a_lost_redis_is_one_log_line_then_one_when_it_is_back(
    caplog: pytest.LogCaptureFixture,
) -> None:
    redis = _FlakyRedis(failures=3)
    hub = object.__new__(RedisEventHub)
    hub._redis_store = cast(Any, _Store(redis))
    hub._closing, hub._reader_id = False, None
    caplog.set_level(logging.INFO, logger="switchboard.coordinator.events")
    reader = asyncio.create_task(hub._read(0))
    try:
        await asyncio.wait_for(redis.answered.wait(), 10)
        await asyncio.sleep(0.2)  # that read returns, and the reader says so
    finally:
        reader.cancel()
    records = [r for r in caplog.records if r.name == "switchboard.coordinator.events"]
    assert [r.getMessage() for r in records] == [
        "cannot read the event stream from Redis (Error 111 connecting to redis:6379. Connection refused.); "
        "retrying every 1 s",
        "reading the event stream from Redis again",
    ]
    assert all(r.exc_info is None for r in records)


class _FlakyStore:
    """claim_due_rings fails ``failures`` times as a store on a stopped Redis does, then finds nothing."""

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.claims = 0
        self.answered = asyncio.Event()

    async def claim_due_rings(self, before: float, lease: float) -> list[tuple[str, str]]:
        self.claims += 1
        if self.claims <= self.failures:
            raise RedisConnectionError("Error 111 connecting to redis:6379. Connection refused.")
        self.answered.set()
        return []


async def test_the_ring_sweeper_says_once_that_redis_is_gone(caplog: pytest.LogCaptureFixture) -> None:
    store = _FlakyStore(failures=6)  # 1.5 s of sweeps at 4 a second
    ringer = Ringer(cast(Any, SimpleNamespace(store=store)))
    caplog.set_level(logging.INFO, logger="switchboard.coordinator.ringing")
    sweeper = asyncio.create_task(ringer._sweep())
    try:
        await asyncio.wait_for(store.answered.wait(), 10)
    finally:
        sweeper.cancel()
    records = [r for r in caplog.records if r.name == "switchboard.coordinator.ringing"]
    assert [r.getMessage() for r in records] == [
        "cannot sweep overdue rings: the store is unreachable "
        "(Error 111 connecting to redis:6379. Connection refused.); retrying",
        "sweeping overdue rings again: the store answers",
    ]
    assert all(r.exc_info is None for r in records)
