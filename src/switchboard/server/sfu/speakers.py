"""Audio levels and the dominant speaker of a room, from RFC 6464 levels, without decoding.

Every published audio track reports the level its sender put in each packet's RFC 6464 header
extension (dBov, -127..0). Every :data:`INTERVAL` seconds the room's :class:`SpeakerDetector` turns
the interval's levels into one level per session (the mean power, as an RMS amplitude 0..1),
decides who is speaking (above :data:`SPEAKING_DBOV`) and picks the dominant speaker with
hysteresis: a new speaker takes over when the current one stopped speaking, or when it has been the
loudest by at least :data:`SWITCH_MARGIN_DB` for :data:`SWITCH_INTERVALS` intervals in a row. Each
interval the room gets ``audio_levels`` when anything changed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from aiohttp import web

from switchboard.protocol import sfu as p
from switchboard.server.sfu.forwarding import PublishedTrack


class LevelRoom(Protocol):
    """What the detector reads of a room (the embedded engine's or the Janus engine's)."""

    @property
    def cid(self) -> str: ...
    @property
    def participants(self) -> dict[str, Any]: ...


def _publishes_audio(participant: Any) -> bool:
    return "audio" in participant.published


log = logging.getLogger("switchboard.sfu.speakers")

#: seconds between updates (four per second)
INTERVAL = 0.25
#: a session is speaking above this level (dBov, RFC 6464)
SPEAKING_DBOV = -50.0
#: a challenger must be this much louder (dB) than the dominant speaker ...
SWITCH_MARGIN_DB = 3.0
#: ... for this many intervals in a row to take over
SWITCH_INTERVALS = 2
SILENCE_DBOV = -127.0


@dataclass
class _Meter:
    user_id: str
    session_id: str
    power: float = 0.0
    frames: int = 0

    def add(self, dbov: int) -> None:
        self.power += 10.0 ** (dbov / 10.0)
        self.frames += 1

    def take_dbov(self) -> float:
        """The interval's mean level, dBov; resets for the next interval."""
        power, frames = self.power, self.frames
        self.power, self.frames = 0.0, 0
        if frames == 0 or power <= 0.0:
            return SILENCE_DBOV
        return max(SILENCE_DBOV, 10.0 * math.log10(power / frames))


def amplitude(dbov: float) -> float:
    """A dBov level as an RMS amplitude relative to full scale, 0..1 (rounded to 3 decimals, so a
    steady source does not make a new message every interval)."""
    return 0.0 if dbov <= SILENCE_DBOV else round(10.0 ** (dbov / 20.0), 3)


class SpeakerDetector:
    """One room's audio levels and dominant speaker (see the module docstring)."""

    def __init__(self, room: LevelRoom, *, publishes_audio: Callable[[Any], bool] = _publishes_audio) -> None:
        """``publishes_audio(participant)``: whether a session of ``room`` publishes audio now."""
        self._room = room
        self._publishes_audio = publishes_audio
        self._meters: dict[str, _Meter] = {}
        self.levels: dict[str, float] = {}
        self.dominant: str | None = None
        self._challenger: str | None = None
        self._challenges = 0
        self._last_sent: p.AudioLevels | None = None
        self._task: asyncio.Task[None] | None = None

    def track_published(self, track: PublishedTrack) -> None:
        track.on_audio_level = self.add_source(track.user_id, track.session_id)

    def add_source(self, user_id: str, session_id: str) -> Callable[[int], None]:
        """Measure a session's audio from now on; feed the returned callable each packet's RFC 6464
        level (dBov, -127..0)."""
        meter = self._meters[session_id] = _Meter(user_id, session_id)
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._run())
        return meter.add

    async def _run(self) -> None:
        try:
            while self._room.participants:
                await asyncio.sleep(INTERVAL)
                message = self.tick()
                if message is not None and message != self._last_sent:
                    self._last_sent = message
                    await self._broadcast(message.model_dump_json())
        except Exception:
            log.exception("%s: speaker detection failed", self._room.cid)

    async def _broadcast(self, text: str) -> None:
        """Send one serialisation to every session (the same message for all, four times a second)."""

        async def send(ws: object) -> None:
            if isinstance(ws, web.WebSocketResponse) and not ws.closed:
                with contextlib.suppress(ConnectionError, RuntimeError):
                    await ws.send_str(text)

        await asyncio.gather(*(send(q.ws) for q in list(self._room.participants.values())))

    def tick(self) -> p.AudioLevels | None:
        """Close the interval: the levels, the dominant speaker, and the message (None: no audio)."""
        present = {s: q for s, q in self._room.participants.items() if self._publishes_audio(q)}
        for session in [s for s in self._meters if s not in present]:
            del self._meters[session]
        if self.dominant is not None and self.dominant not in self._room.participants:
            self.dominant = None
        self.levels = {session: meter.take_dbov() for session, meter in self._meters.items()}
        self._choose_dominant()
        if not self._meters and self.dominant is None:
            return None
        return p.AudioLevels(
            levels=[
                p.AudioLevel(
                    user_id=meter.user_id,
                    session_id=session,
                    level=amplitude(self.levels[session]),
                    speaking=self.levels[session] > SPEAKING_DBOV,
                )
                for session, meter in self._meters.items()
            ],
            dominant_speaker=self.dominant,
        )

    def _choose_dominant(self) -> None:
        speaking = {s: level for s, level in self.levels.items() if level > SPEAKING_DBOV}
        if not speaking:
            self._challenger, self._challenges = None, 0
            return  # nobody speaks: the dominant speaker stays
        loudest = max(speaking, key=lambda s: speaking[s])
        current = self.dominant
        if current is None or current not in speaking:
            self.dominant, self._challenger, self._challenges = loudest, None, 0
            return
        if loudest == current or speaking[loudest] < speaking[current] + SWITCH_MARGIN_DB:
            self._challenger, self._challenges = None, 0
            return
        self._challenges = self._challenges + 1 if loudest == self._challenger else 1
        self._challenger = loudest
        if self._challenges >= SWITCH_INTERVALS:
            self.dominant, self._challenger, self._challenges = loudest, None, 0

    def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
