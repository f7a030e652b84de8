"""Helper process: lightweight SFU load -- raw signalling clients that publish or count audio.

No SDK, no decoding, no speaker: each participant speaks the SFU protocol directly
(``switchboard.protocol.sfu``) after a coordinator ``/join``. A *publisher* joins with audio forwarding
to it paused (it listens to nobody) and sends pre-encoded Opus frames of a tone (encoded once at
start-up, so publishing costs no encoding), each written as one RTP packet by a
:class:`DirectRtpSender` when it is due (no sender task or queue: a publisher process short of CPU
sends late rather than dropping frames from a queue). A *subscriber*
publishes nothing and taps every received audio track with :func:`tap_receiver` (aiortc's transport,
SRTP and RTP parsing, but no jitter-buffer delay and no decoder), counting frames.

Commands (one JSON line each, one answer line each):

* ``{"cmd": "join", "participants": [{"user", "room", "publish": bool, "expect": n}, ...]}``: join them
  (subscribers wait until they receive ``expect`` audio tracks); answer ``{"joined": n}``.
* ``{"cmd": "go", "frames": n}``: every publisher sends exactly ``n`` frames, one per 20 ms, publishers
  spread over the 20 ms period; answer ``{"pushed": total}`` when done.
* ``{"cmd": "stats"}``: ``{"received": total frames tapped by subscribers, "pushed": ..., ...}``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from typing import Any

import aiohttp
import numpy as np
from aiortc import RTCRtpSender, RTCSessionDescription
from aiortc.mediastreams import MediaStreamTrack

from benchmarks.common import Json, ServerInfo, commands, emit, run_child
from switchboard.media import ToneMicrophone
from switchboard.media.local_ice import create_peer_connection, loopback_ice_address
from switchboard.media.rtp_hooks import (
    DirectRtpSender,
    EncodedTrack,
    OpusFrameEncoder,
    ReceiverTap,
    ntp_now,
    tap_receiver,
)
from switchboard.protocol import coordinator as m
from switchboard.protocol import sfu as p
from switchboard.sdk.coordinator import CoordinatorApi

READY_TIMEOUT = 30.0
JOIN_TIMEOUT = 60.0
log = logging.getLogger("benchmarks.loadgen")
TONE_FRAMES = 50


def tone_payloads(hz: float = 500.0, frames: int = TONE_FRAMES) -> list[bytes]:
    """One second of a tone, Opus-encoded once (libopus, mono 32 kb/s voip: the SDK's broadcaster)."""
    mic = ToneMicrophone(hz)
    encoder = OpusFrameEncoder()
    return [
        encoder.encode(np.round(mic.read_frame() * 32767.0).astype(np.int16).reshape(-1)).data
        for _ in range(frames)
    ]


class RawParticipant:
    def __init__(self, server: ServerInfo, http: aiohttp.ClientSession, spec: Json, stream_id: int) -> None:
        self.server = server
        self.http = http
        self.user = str(spec["user"])
        self.room = str(spec["room"])
        self.publishes = bool(spec.get("publish", False))
        self.expect = int(spec.get("expect", 0))
        self.stream_id = stream_id
        loopback = loopback_ice_address(server.sfu_url)
        self.publisher = create_peer_connection(loopback_address=loopback) if self.publishes else None
        self.subscriber = create_peer_connection(loopback_address=loopback)
        self.track = EncodedTrack("audio") if self.publishes else None  # (its stats count what is sent)
        self.direct: DirectRtpSender | None = None
        self.taps: list[ReceiverTap] = []
        self.pushed = 0
        self.phase = "starting"
        self._ws: aiohttp.ClientWebSocketResponse | None = None
        self._reader: asyncio.Task[None] | None = None
        self._waiting: dict[str, asyncio.Future[Any]] = {}
        self._tracks_changed = asyncio.Event()
        self.subscriber.on("track", self._on_track)
        self.subscriber.on("connectionstatechange", self._tracks_changed.set)

    @property
    def received(self) -> int:
        return sum(t.frames for t in self.taps)

    def _expect(self, message_type: str) -> asyncio.Future[Any]:
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._waiting[message_type] = future
        return future

    async def _send(self, message: p._Msg) -> None:
        assert self._ws is not None
        await self._ws.send_str(message.model_dump_json())

    async def join(self) -> None:
        try:
            await asyncio.wait_for(self._join(), JOIN_TIMEOUT)
        except TimeoutError:
            raise TimeoutError(
                f"{self.user}: no progress within {JOIN_TIMEOUT:.0f} s while {self.phase} (tracks "
                f"{len(self.taps)}/{self.expect}, subscriber connection {self.subscriber.connectionState})"
            ) from None

    async def _join(self) -> None:
        self.phase = "calling the coordinator's /join"
        api = CoordinatorApi(self.server.url, self.server.api_key, self.server.token(self.user), self.http)
        response = await api.request(
            "POST", f"/calls/default/{self.room}/join", m.JoinCallResponse, m.JoinCallRequest(create=True)
        )
        self.phase = "connecting to the SFU"
        self._ws = await self.http.ws_connect(response.credentials.server.url, heartbeat=10.0)
        joined = self._expect("join_response")
        self._reader = asyncio.get_running_loop().create_task(self._read(self._ws))
        self.phase = "waiting for the SFU's join response"
        await self._send(p.JoinRequest(token=response.credentials.token, audio_paused=self.publishes))
        await asyncio.wait_for(joined, READY_TIMEOUT)
        if self.publisher is not None and self.track is not None:
            self.phase = "publishing"
            transceiver = self.publisher.addTransceiver(self.track, direction="sendonly")
            self.direct = DirectRtpSender(transceiver.sender, self.track.stats)
            codecs = RTCRtpSender.getCapabilities("audio").codecs
            transceiver.setCodecPreferences([c for c in codecs if c.mimeType.lower() == "audio/opus"])
            await self.publisher.setLocalDescription(await self.publisher.createOffer())
            answered = self._expect("publisher_answer")
            await self._send(p.PublisherOffer(sdp=self.publisher.localDescription.sdp))
            answer = await asyncio.wait_for(answered, READY_TIMEOUT)
            await self.publisher.setRemoteDescription(RTCSessionDescription(answer.sdp, "answer"))
            await self._until(
                lambda: self.publisher is not None and self.publisher.connectionState == "connected"
            )
        if self.expect:
            self.phase = "waiting for the subscribed tracks"
            await self._until(
                lambda: len(self.taps) >= self.expect and self.subscriber.connectionState == "connected"
            )

    async def _until(self, ready: Any) -> None:
        async def wait() -> None:
            while not ready():
                self._tracks_changed.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._tracks_changed.wait(), 0.1)

        await asyncio.wait_for(wait(), READY_TIMEOUT)

    async def _read(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        async for msg in ws:
            if msg.type != aiohttp.WSMsgType.TEXT:
                continue
            try:
                await self._handle(p.server_message.validate_json(msg.data))
            except Exception:
                log.exception("%s: handling an SFU message failed", self.user)

    async def _handle(self, message: p.ServerMessage) -> None:
        future = self._waiting.pop(message.type, None)
        if future is not None and not future.done():
            future.set_result(message)
        if isinstance(message, p.SubscriberOffer):
            await self.subscriber.setRemoteDescription(RTCSessionDescription(message.sdp, "offer"))
            await self.subscriber.setLocalDescription(await self.subscriber.createAnswer())
            await self._send(p.SubscriberAnswer(sdp=self.subscriber.localDescription.sdp))
        elif isinstance(message, p.ErrorMessage):
            error = RuntimeError(f"SFU error for {self.user}: {message.code}: {message.message}")
            for waiting in self._waiting.values():
                if not waiting.done():
                    waiting.set_exception(error)

    def _on_track(self, track: MediaStreamTrack) -> None:
        receiver = next(
            (t.receiver for t in self.subscriber.getTransceivers() if t.receiver.track is track), None
        )
        if receiver is not None and track.kind == "audio":
            self.taps.append(tap_receiver(receiver, lambda frame: None))
            self._tracks_changed.set()

    def push(self, payload: bytes, now: float, ntp: int) -> None:
        if self.direct is not None:
            self.direct.send(payload, self.pushed * 960, self.stream_id, now, ntp)
            self.pushed += 1

    async def close(self) -> None:
        with contextlib.suppress(Exception):
            if self._ws is not None:
                await self._send(p.Leave())
                await self._ws.close()
        if self._reader is not None:
            self._reader.cancel()
        pcs = [pc for pc in (self.publisher, self.subscriber) if pc is not None]
        await asyncio.gather(*(pc.close() for pc in pcs), return_exceptions=True)


async def _go(publishers: list[RawParticipant], payloads: list[bytes], frames: int) -> int:
    """Each publisher sends ``frames`` frames at 20 ms; publishers are spread over 4 phases of 5 ms."""
    loop = asyncio.get_running_loop()
    groups = [publishers[g::4] for g in range(4)]
    t0 = loop.time() + 0.01
    pushed = 0
    for n in range(frames):
        payload = payloads[n % len(payloads)]  # the tone's phase restarts each command: harmless
        for g, group in enumerate(groups):
            delay = t0 + n * 0.02 + g * 0.005 - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            now, ntp = time.monotonic(), ntp_now()
            for publisher in group:
                publisher.push(payload, now, ntp)
                pushed += 1
    return pushed


async def main(config: Json) -> None:
    os.nice(int(config.get("nice", 0)))
    server = ServerInfo.from_json(config["server"])
    concurrency = asyncio.Semaphore(int(config.get("concurrency", 8)))
    payloads = tone_payloads()
    participants: list[RawParticipant] = []
    # No connection limit: every participant holds a WebSocket (aiohttp's default pool is 100).
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as http:

        async def start(spec: Json) -> RawParticipant:
            async with concurrency:
                participant = RawParticipant(server, http, spec, stream_id=10_000 + len(participants))
                participants.append(participant)
                await participant.join()
                return participant

        try:
            emit({"ready": True})
            async for command in commands():
                cmd = command.get("cmd")
                if cmd == "join":
                    outcomes = await asyncio.gather(
                        *(start(spec) for spec in command["participants"]), return_exceptions=True
                    )
                    errors = [f"{type(e).__name__}: {e}" for e in outcomes if isinstance(e, BaseException)]
                    emit({"joined": len(outcomes) - len(errors), "failed": len(errors), "errors": errors[:3]})
                elif cmd == "go":
                    publishers = [q for q in participants if q.publishes]
                    frames = int(command["frames"])
                    pushed = await _go(publishers, payloads, frames)
                    emit({"pushed": pushed})
                elif cmd == "stats":
                    emit(
                        {
                            "received": sum(q.received for q in participants),
                            "pushed": sum(q.pushed for q in participants),
                            "publishers": sum(q.publishes for q in participants),
                            "subscribers": sum(not q.publishes for q in participants),
                            "tracks_received": sum(len(q.taps) for q in participants),
                            # what publishers' aiortc senders took from their tracks, and overflow drops
                            "sender_took": sum(q.track.stats.sent for q in participants if q.track),
                            "publisher_overflow": sum(
                                q.track.stats.dropped_overflow for q in participants if q.track
                            ),
                        }
                    )
        finally:
            await asyncio.gather(*(q.close() for q in participants), return_exceptions=True)


if __name__ == "__main__":
    run_child(main)
