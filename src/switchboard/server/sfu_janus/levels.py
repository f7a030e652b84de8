"""Audio levels and the dominant speaker on the Janus engine, from the RFC 6464 levels publishers send.

Janus's own VideoRoom events (``audiolevel_event``: ``talking`` / ``stopped-talking``) only report
when a publisher crosses a threshold, not how loud each one is, so they cannot rank two people
speaking at once. The node therefore subscribes to every audio stream of the call itself: one
:class:`LevelListener` per call holds a VideoRoom subscriber handle and one aiortc peer connection
(the node's, on the same interface as Janus) receiving each publisher's audio once, whatever the
number of subscribers. Its receivers are tapped (``media/rtp_hooks.py: tap_receiver``): nothing is
decoded; each packet's RFC 6464 header extension level (dBov) feeds the same
:class:`~switchboard.server.sfu.speakers.SpeakerDetector` the embedded engine uses, which sends
``audio_levels`` to the call four times a second. While the call is recorded, the packets also go
to the recording (``recording.py``).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Protocol

from aiortc import RTCSessionDescription
from aiortc.mediastreams import MediaStreamTrack

from switchboard.media.local_ice import create_peer_connection
from switchboard.media.rtp_hooks import EncodedFrame, ReceiverTap, route_remote_ssrcs, tap_receiver
from switchboard.server.sfu.sessions import BackgroundTasks
from switchboard.server.sfu.speakers import SpeakerDetector
from switchboard.server.sfu_janus.janus_api import JanusError, JsonObject
from switchboard.server.sfu_janus.sdp import janus_dtls_client
from switchboard.server.sfu_janus.subscription import Subscription

if TYPE_CHECKING:
    from switchboard.server.sfu_janus.room import JanusParticipant, JanusRoom

log = logging.getLogger("switchboard.sfu.janus")


class PacketSink(Protocol):
    """Where a running recording takes each packet (``recording.py``)."""

    def write(self, participant: JanusParticipant, frame: EncodedFrame) -> None: ...


JANUS_ERRORS = (JanusError, ConnectionError, TimeoutError)


def _publishes_audio(participant: JanusParticipant) -> bool:
    return "audio" in participant.pub_mids.values()


class LevelListener:
    """The node's own subscription to every audio stream of one call (see the module docstring)."""

    def __init__(self, room: JanusRoom) -> None:
        self.room = room
        self.detector = SpeakerDetector(room, publishes_audio=_publishes_audio)
        self.pc = create_peer_connection(loopback_address=None)
        self.pc.on("track", self._on_track)
        self.subscription = Subscription(self._on_event)
        #: subscriber mid -> where its packets' levels go (the publishing session's meter)
        self._sinks: dict[str, Callable[[int], None]] = {}
        self._owners: dict[str, str] = {}
        #: a running recording of the call, given every packet too
        self.recorder: PacketSink | None = None
        self.taps: list[ReceiverTap] = []
        self._tasks = BackgroundTasks(f"{room.cid} level listener")
        self.closed = False

    def spawn(self, coro: Awaitable[None]) -> None:
        self._tasks.spawn(coro)

    async def sync(self) -> None:
        """Subscribe to the audio streams published now and drop those that are gone."""
        async with self.subscription.lock:
            janus = self.room.janus
            if self.closed or janus is None:
                return
            wanted = {
                (q.feed_id, mid)
                for q in self.room.participants.values()
                for mid, kind in q.pub_mids.items()
                if kind == "audio"
            }
            live_feeds = {q.feed_id for q in self.room.participants.values()}
            try:
                reply = await self.subscription.update(janus, self.room.janus_room, wanted, live_feeds)
            except JANUS_ERRORS as exc:
                log.warning("%s: level listener subscription failed: %s", self.room.cid, exc)
                return
            if reply is not None:
                await self._negotiate(reply)

    def _on_event(self, event: JsonObject) -> None:
        jsep = event.get("jsep")
        if isinstance(jsep, dict) and jsep.get("type") == "offer":
            self.spawn(self._negotiate_locked(event))

    async def _negotiate_locked(self, event: JsonObject) -> None:
        async with self.subscription.lock:
            await self._negotiate(event)

    async def _negotiate(self, reply: JsonObject) -> None:
        """Point each subscribed mid at its publisher's meter, then answer Janus's offer."""
        streams = reply.get("plugindata", {}).get("data", {}).get("streams")
        if isinstance(streams, list):
            for stream in streams:
                mid = str(stream.get("mid"))
                owner = self.room.by_feed.get(int(stream.get("feed_id", 0) or 0))
                if stream.get("type") != "audio" or not stream.get("active", True) or owner is None:
                    self._sinks.pop(mid, None)
                    self._owners.pop(mid, None)
                elif self._owners.get(mid) != owner.session_id:
                    self._owners[mid] = owner.session_id
                    self._sinks[mid] = self.detector.add_source(owner.user_id, owner.session_id)
        jsep = reply.get("jsep")
        handle = self.subscription.handle
        if self.closed or handle is None or not isinstance(jsep, dict) or jsep.get("type") != "offer":
            return
        try:
            offer = RTCSessionDescription(janus_dtls_client(str(jsep["sdp"])), "offer")
            await self.pc.setRemoteDescription(offer)
            await self.pc.setLocalDescription(await self.pc.createAnswer())
            route_remote_ssrcs(self.pc)  # Janus gives a reused m-line a new SSRC
            answer = self.pc.localDescription.sdp
            await handle.message({"request": "start"}, jsep={"type": "answer", "sdp": answer})
        except JANUS_ERRORS as exc:
            log.warning("%s: level listener negotiation failed: %s", self.room.cid, exc)

    def _on_track(self, track: MediaStreamTrack) -> None:
        transceiver = next((t for t in self.pc.getTransceivers() if t.receiver.track is track), None)
        if transceiver is None or transceiver.mid is None or track.kind != "audio":
            return
        mid = transceiver.mid

        def level(frame: EncodedFrame) -> None:
            sink = self._sinks.get(mid)
            if sink is not None and frame.audio_level is not None:
                sink(frame.audio_level)
            if self.recorder is not None:
                owner = self.room.participants.get(self._owners.get(mid, ""))
                if owner is not None:
                    self.recorder.write(owner, frame)

        self.taps.append(tap_receiver(transceiver.receiver, level))

    async def close(self) -> None:
        self.closed = True
        self.detector.close()
        self._tasks.cancel()
        await self.subscription.detach()
        for tap in self.taps:
            tap.close()
        with contextlib.suppress(Exception):
            await self.pc.close()
