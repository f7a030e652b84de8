"""A call on the Janus engine: one Janus VideoRoom, and per session a publisher and a subscriber handle.

The signalling towards clients is switchboard's (``protocol/sfu.py``); media between clients never
passes through this process (the call's :class:`~switchboard.server.sfu_janus.levels.LevelListener`
receives each publisher's audio once, for levels and recording). Per session:

* the **publisher** handle joins the VideoRoom as a publisher (feed id allocated here, display = the
  session id); the client's ``publisher_offer`` goes to Janus as ``publish`` (then ``configure`` for
  renegotiations) and Janus's answer comes back as ``publisher_answer``;
* the **subscriber** handle subscribes to the other sessions' streams (one multistream subscription,
  grown and shrunk with ``update``); each offer Janus makes is relayed as ``subscriber_offer`` with
  the ``tracks`` map built from Janus's ``streams`` list, and the client's answer goes back as
  ``start`` (one offer in flight at a time);
* pausing (``update_subscription``, ``audio_paused``) is a per-stream ``configure {"send": false}``
  on the subscriber handle: Janus stops relaying that stream to this subscriber only;
* a whisper (``update_audience``, SPEC §2.8) is the same per-stream ``send: false`` on the subscriber
  handle of every session whose user is outside the publisher's audience (the rules are the embedded
  engine's: ``server/sfu/sessions.py``).

Send grants: only published streams of an allowed kind are ever subscribed to by anyone; the client
gets ``permission_denied`` (non-fatal) for the others, as with the embedded engine.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web
from aiortc.sdp import SessionDescription

from switchboard.protocol import sfu as p
from switchboard.protocol.tokens import SfuClaims, SfuGrants
from switchboard.server.sfu.participant import MAX_PUBLISHER_MEDIA
from switchboard.server.sfu.sessions import (
    Audience,
    BackgroundTasks,
    CallSessions,
    Kind,
    ParticipantHook,
    PauseKey,
    apply_pause,
    audience_changed,
    audience_of,
    forget_session,
    forwarding_paused,
    participant_info,
)
from switchboard.server.sfu_janus.janus_api import JanusConnection, JanusError, JanusHandle, JsonObject
from switchboard.server.sfu_janus.levels import LevelListener
from switchboard.server.sfu_janus.sdp import janus_dtls_client
from switchboard.server.sfu_janus.subscription import Subscription

log = logging.getLogger("switchboard.sfu.janus")

NEGOTIATION_TIMEOUT = 10.0
_feed_ids = itertools.count(1)


def _sdp_media(sdp: str) -> list[tuple[str, str]]:
    """(mid, kind) of each audio/video m-line of ``sdp`` (ValueError if it does not parse)."""
    parsed = SessionDescription.parse(sdp)
    return [(m.rtp.muxId, m.kind) for m in parsed.media if m.kind in ("audio", "video")]


def _trickles(sdp: str) -> bool:
    """Whether the client will trickle its candidates (RFC 8838): its description carries none."""
    return "a=candidate:" not in sdp


def _allowed(grants: SfuGrants, kind: str) -> bool:
    """Whether the send ``grants`` allow publishing ``kind`` (SPEC §2.7, §2.10)."""
    return grants.send_audio if kind == "audio" else grants.send_video


class JanusParticipant:
    def __init__(self, room: JanusRoom, claims: SfuClaims, ws: web.WebSocketResponse) -> None:
        self.room = room
        self.user_id = claims.user_id
        self.session_id = claims.session_id
        self.grants = claims.grants
        self.ws: web.WebSocketResponse | None = ws
        self.feed_id = next(_feed_ids)
        self.publisher: JanusHandle | None = None
        #: the subscriber handle (attached once there is something to receive) and its streams
        self.subscription = Subscription(self._on_subscriber_event)
        #: published streams forwarded to others: mid -> kind (allowed kinds only)
        self.pub_mids: dict[str, str] = {}
        #: every stream the publisher sends, allowed or not: mid -> kind (a kind granted later is
        #: forwarded from then on)
        self.sent_media: dict[str, str] = {}
        #: kinds a moderator muted: held back from everyone until this client unmutes them
        self.moderated: set[Kind] = set()
        self.muted: dict[str, bool] = {}
        #: users this session's audio goes to (SPEC §2.8 whisper); None: everyone
        self.audience: Audience = None
        self._published_once = False
        #: Janus reported the publisher's peer connection up (``webrtcup``): others may subscribe
        self._webrtc_up = asyncio.Event()
        #: forwarding pauses this subscriber asked for: (publisher session or None for all, kind)
        self.paused: set[PauseKey] = set()
        #: Janus's latest subscriber streams: mid -> stream description
        self.sub_streams: dict[str, JsonObject] = {}
        #: what each subscribed stream was last configured to: (mid, feed id) -> send (Janus may
        #: reuse a mid for another feed, whose forwarding starts from Janus's default, sending)
        self._send_state: dict[tuple[str, int], bool] = {}
        self._last_offer: p.SubscriberOffer | None = None
        self._answer: asyncio.Future[str] | None = None
        self._discard_answer = False
        self.closed = False
        self._tasks = BackgroundTasks(self)

    def __repr__(self) -> str:
        return f"JanusParticipant({self.user_id}/{self.session_id[:8]})"

    @property
    def subscriber(self) -> JanusHandle | None:
        """The subscriber handle (None until this session has something to receive)."""
        return self.subscription.handle

    def info(self) -> p.ParticipantInfo:
        kinds: list[Kind] = sorted(set(self.pub_mids.values()))  # type: ignore[arg-type]
        tracks = [(kind, self.muted.get(kind, False)) for kind in kinds]
        return participant_info(self.user_id, self.session_id, tracks, self.audience)

    def spawn(self, coro: Awaitable[None]) -> None:
        self._tasks.spawn(coro)

    async def send(self, message: p._Msg) -> None:
        ws = self.ws
        if ws is None or ws.closed:
            return
        with contextlib.suppress(ConnectionError, RuntimeError):
            await ws.send_str(message.model_dump_json())

    async def error(self, code: str, message: str, *, fatal: bool = False) -> None:
        await self.send(p.ErrorMessage(code=code, message=message, fatal=fatal))

    def attach(self, ws: web.WebSocketResponse) -> None:
        self.ws = ws

    def detach(self) -> None:
        self.ws = None

    def apply_grants(self, grants: SfuGrants) -> None:
        """A resumed session takes the fresh token's grants: refused kinds stop being forwarded."""
        self.grants = grants
        gone = {mid: kind for mid, kind in self.pub_mids.items() if not _allowed(grants, kind)}
        if not gone:
            return
        for mid in gone:
            del self.pub_mids[mid]
        for kind in sorted(set(gone.values())):
            self.spawn(
                self.room.broadcast(
                    p.TrackUnpublished(user_id=self.user_id, session_id=self.session_id, kind=kind),  # type: ignore[arg-type]
                    exclude=self,
                )
            )
        self.room.resync()

    # ---------------------------------------------------------------- publishing

    async def start(self, janus: JanusConnection, janus_room: int) -> None:
        """Attach the publisher handle and join the VideoRoom as a publisher."""
        self.publisher = await janus.attach()
        self.publisher.on_event = self._on_publisher_event
        await self.publisher.message(
            {
                "request": "join",
                "ptype": "publisher",
                "room": janus_room,
                "id": self.feed_id,
                "display": self.session_id,
            }
        )

    def _on_publisher_event(self, event: JsonObject) -> None:
        if event.get("janus") == "webrtcup":
            self._webrtc_up.set()
        elif event.get("janus") == "hangup" and not self.closed:
            # the publisher's peer connection failed (ICE/DTLS): removed at once, as with the embedded SFU
            log.info("%r: janus hung up the publisher (%s)", self, event.get("reason"))
            self.spawn(self.room.remove(self, reason="vanished"))

    async def handle_publisher_offer(self, offer: p.PublisherOffer) -> None:
        try:
            media = _sdp_media(offer.sdp)
        except (ValueError, AttributeError, IndexError) as exc:
            await self.error("invalid_sdp", f"publisher offer: {exc}")
            return
        if len(media) > MAX_PUBLISHER_MEDIA:
            await self.error("invalid_sdp", f"at most {MAX_PUBLISHER_MEDIA} media sections")
            return
        refused = sorted({kind for _, kind in media if not _allowed(self.grants, kind)})
        if refused:
            await self.error("permission_denied", f"this session may not publish {', '.join(refused)}")
        assert self.publisher is not None
        request = "configure" if self._published_once else "publish"
        try:
            reply = await self.publisher.message(
                {"request": request},
                jsep={"type": "offer", "sdp": offer.sdp, "trickle": _trickles(offer.sdp)},
            )
        except (JanusError, ConnectionError, TimeoutError) as exc:
            await self.error("invalid_sdp", f"the media server refused the offer: {exc}")
            return
        jsep = reply.get("jsep")
        if not isinstance(jsep, dict) or jsep.get("type") != "answer":
            await self.error("invalid_sdp", "the media server gave no answer")
            return
        self._published_once = True
        await self.send(p.PublisherAnswer(sdp=str(jsep["sdp"])))
        self.spawn(self._announce(media))

    async def _announce(self, media: list[tuple[str, str]]) -> None:
        """Once Janus has the publisher's media up: announce new tracks and let others subscribe."""
        try:
            await asyncio.wait_for(self._webrtc_up.wait(), NEGOTIATION_TIMEOUT)
        except TimeoutError:
            log.warning("%r: the publisher connection did not come up", self)
            return
        self.sent_media.update(media)
        await self.publish_allowed()

    async def publish_allowed(self) -> None:
        """Forward the sent streams the grants allow and that are not forwarded yet, and say so."""
        new_kinds = []
        for mid, kind in self.sent_media.items():
            if _allowed(self.grants, kind) and mid not in self.pub_mids:
                self.pub_mids[mid] = kind
                new_kinds.append(kind)
        for kind in new_kinds:
            await self.room.broadcast(
                p.TrackPublished(
                    user_id=self.user_id,
                    session_id=self.session_id,
                    kind=kind,  # type: ignore[arg-type]
                    muted=self.muted.get(kind, False),
                ),
                exclude=self,
            )
        if new_kinds:
            self.room.resync()

    async def update_mute_state(self, message: p.UpdateMuteState) -> None:
        self.muted[message.kind] = message.muted
        if not message.muted and message.kind in self.moderated:
            self.moderated.discard(message.kind)  # the user unmutes after a moderator's mute
            self.room.refresh_pauses()
        await self.room.broadcast(
            p.MuteStateChanged(
                user_id=self.user_id, session_id=self.session_id, kind=message.kind, muted=message.muted
            ),
            exclude=None,
        )

    # ---------------------------------------------------------------- subscribing

    def update_subscription(self, message: p.UpdateSubscription) -> bool:
        """Pause/resume forwarding to this subscriber; False for a session not in the call."""
        if message.session_id is not None and message.session_id not in self.room.participants:
            return False
        self.paused = apply_pause(self.paused, message.session_id, message.kind, message.paused)
        self.spawn(self.apply_pauses())
        return True

    def is_paused(self, publisher: JanusParticipant, kind: Kind) -> bool:
        """Whether ``publisher``'s ``kind`` is held back from this subscriber: paused by it, outside
        the publisher's audience (``sessions.py``), or muted by a moderator."""
        return kind in publisher.moderated or forwarding_paused(
            self.paused, self.user_id, publisher.session_id, publisher.audience, kind
        )

    async def update_audience(self, message: p.UpdateAudience) -> None:
        """Forward this session's audio only to ``message.user_ids`` (None: everyone), say so to all."""
        self.audience = audience_of(message.user_ids)
        self.room.refresh_pauses()
        await self.room.broadcast(
            audience_changed(self.user_id, self.session_id, self.audience), exclude=None
        )

    async def apply_pauses(self) -> None:
        """Per-stream ``configure {"send": ...}`` for every stream whose state must change."""
        handle = self.subscriber
        if handle is None:
            return
        changes = []
        for mid, stream in self.sub_streams.items():
            feed = int(stream.get("feed_id", 0) or 0)
            owner = self.room.by_feed.get(feed)
            if owner is None:
                continue
            send = not self.is_paused(owner, "audio" if stream.get("type") == "audio" else "video")
            if self._send_state.get((mid, feed), True) != send:
                changes.append({"mid": mid, "send": send})
                self._send_state[(mid, feed)] = send
        if changes:
            with contextlib.suppress(JanusError, ConnectionError, TimeoutError):
                await handle.message({"request": "configure", "streams": changes})

    def sends(self, mid: str, stream: JsonObject) -> bool:
        """Whether Janus forwards the subscribed stream ``mid`` (``stream``: Janus's description)."""
        return self._send_state.get((mid, int(stream.get("feed_id", 0) or 0)), True)

    def _wanted(self) -> set[tuple[int, str]]:
        return {(other.feed_id, mid) for other in self.room.others(self) for mid in other.pub_mids}

    async def sync(self) -> None:
        """Subscribe to what the others publish now and unsubscribe from what is gone."""
        async with self.subscription.lock:
            janus = self.room.janus
            if self.closed or janus is None:
                return
            live_feeds = {q.feed_id for q in self.room.others(self)}
            reply = await self.subscription.update(janus, self.room.janus_room, self._wanted(), live_feeds)
            if reply is not None:
                await self._negotiate(reply)

    def _on_subscriber_event(self, event: JsonObject) -> None:
        """Janus renegotiates by itself when a feed this session receives goes away."""
        jsep = event.get("jsep")
        if isinstance(jsep, dict) and jsep.get("type") == "offer":
            self.spawn(self._negotiate_locked(event))

    async def _negotiate_locked(self, reply: JsonObject) -> None:
        async with self.subscription.lock:
            await self._negotiate(reply)

    async def _negotiate(self, reply: JsonObject) -> None:
        """Relay Janus's offer in ``reply`` to the client and its answer back (``start``)."""
        data = reply.get("plugindata", {}).get("data", {})
        streams = data.get("streams")
        if isinstance(streams, list):
            self.sub_streams = {
                str(s["mid"]): s
                for s in streams
                if s.get("type") in ("audio", "video") and s.get("active", True) and "feed_id" in s
            }
        jsep = reply.get("jsep")
        if not isinstance(jsep, dict) or jsep.get("type") != "offer" or self.subscriber is None:
            return
        tracks: dict[str, p.RemoteTrack] = {}
        for mid, stream in self.sub_streams.items():
            owner = self.room.by_feed.get(int(stream["feed_id"]))
            if owner is not None:
                tracks[mid] = p.RemoteTrack(
                    user_id=owner.user_id, session_id=owner.session_id, kind=stream["type"]
                )
        await self.apply_pauses()  # before the client can receive anything
        offer = p.SubscriberOffer(sdp=janus_dtls_client(str(jsep["sdp"])), tracks=tracks)
        self._last_offer = offer
        self._answer = asyncio.get_running_loop().create_future()
        await self.send(offer)
        try:
            sdp = await asyncio.wait_for(self._answer, NEGOTIATION_TIMEOUT)
        except TimeoutError:
            log.warning("%r: no subscriber answer", self)
            return
        finally:
            self._answer = None
        with contextlib.suppress(JanusError, ConnectionError, TimeoutError):
            await self.subscriber.message(
                {"request": "start"}, jsep={"type": "answer", "sdp": sdp, "trickle": _trickles(sdp)}
            )

    async def handle_subscriber_answer(self, answer: p.SubscriberAnswer) -> None:
        if self._answer is not None and not self._answer.done():
            self._answer.set_result(answer.sdp)
        elif self._discard_answer:
            self._discard_answer = False  # the answer to a re-sent offer: Janus already has it
        else:
            await self.error("invalid_request", "no subscriber offer is waiting for an answer")

    async def add_ice_candidate(self, message: p.IceCandidate) -> None:
        """Hand a trickled candidate (RFC 8838) to Janus's handle for that connection.

        Janus queues candidates that arrive before the description they belong to; a candidate for
        a subscriber connection that does not exist yet (nothing to receive so far) is an error.
        """
        handle = self.publisher if message.target == "publisher" else self.subscriber
        if handle is None:
            await self.error("invalid_request", f"no {message.target} connection for this candidate")
            return
        candidate: JsonObject
        if message.candidate is None or not message.candidate.strip():
            candidate = {"completed": True}
        else:
            text = message.candidate.strip()
            candidate = {"candidate": text if text.startswith("candidate:") else f"candidate:{text}"}
            if message.sdp_mid is not None:
                candidate["sdpMid"] = message.sdp_mid
            candidate["sdpMLineIndex"] = message.sdp_mline_index or 0
        try:
            await handle.connection.request(
                {"janus": "trickle", "handle_id": handle.id, "candidate": candidate}
            )
        except (JanusError, ConnectionError, TimeoutError) as exc:
            await self.error("invalid_candidate", f"{message.target} candidate not applied: {exc}")

    def request_negotiation(self) -> None:
        """After a reconnect: re-send the current subscriber offer (the connection is untouched)."""
        if self._last_offer is not None and self._answer is None:
            self._discard_answer = True
            self.spawn(self.send(self._last_offer))

    async def close(self) -> None:
        self.closed = True
        await self.subscription.detach()
        publisher, self.publisher = self.publisher, None
        if publisher is not None and not publisher.connection.closed.is_set():
            await publisher.detach()
        self._tasks.cancel()
        ws, self.ws = self.ws, None
        if ws is not None and not ws.closed:
            with contextlib.suppress(Exception):
                await ws.close()


class JanusRoom(CallSessions[JanusParticipant]):
    """A call: its sessions and the Janus VideoRoom they meet in."""

    def __init__(
        self,
        cid: str,
        janus: JanusConnection,
        janus_room: int,
        *,
        on_participant: ParticipantHook | None = None,
        on_empty: Callable[[JanusRoom], Awaitable[None]] | None = None,
    ) -> None:
        super().__init__(cid, on_participant=on_participant)
        self.janus: JanusConnection | None = janus
        self.janus_room = janus_room
        self.by_feed: dict[int, JanusParticipant] = {}
        self._on_empty = on_empty
        #: the node's own subscription to every audio stream: audio levels, dominant speaker
        self.levels = LevelListener(self)

    def resync(self) -> None:
        """Every session, and the level listener, re-checks its subscription (tracks came or went)."""
        for q in self.participants.values():
            q.spawn(q.sync())
        self.levels.spawn(self.levels.sync())

    def refresh_pauses(self) -> None:
        """Every session re-applies what it may receive (an audience or a moderator's mute changed)."""
        for q in self.participants.values():
            q.spawn(q.apply_pauses())

    async def add(self, participant: JanusParticipant) -> None:
        assert self.janus is not None
        await participant.start(self.janus, self.janus_room)
        self.participants[participant.session_id] = participant
        self.by_feed[participant.feed_id] = participant
        await participant.send(
            p.JoinResponse(
                session_id=participant.session_id,
                call_cid=self.cid,
                participants=[q.info() for q in self.others(participant)],
            )
        )
        await self.broadcast(p.ParticipantJoined(participant=participant.info()), exclude=participant)
        participant.spawn(participant.sync())
        await self._notify(participant, True)

    async def remove(self, participant: JanusParticipant, *, reason: str = "left") -> None:
        self.cancel_removal(participant)
        if self.participants.get(participant.session_id) is not participant:
            return
        del self.participants[participant.session_id]
        for other in self.others(participant):
            other.paused = forget_session(other.paused, participant.session_id)
        await participant.close()
        self.by_feed.pop(participant.feed_id, None)
        await self.broadcast(
            p.ParticipantLeft(user_id=participant.user_id, session_id=participant.session_id, reason=reason),
            exclude=None,
        )
        self.resync()
        await self._notify(participant, False)
        if not self.participants:
            await self.levels.close()
            if self._on_empty is not None:
                await self._on_empty(self)

    async def end(self) -> None:
        await self.broadcast(p.CallEnded(), exclude=None)
        await asyncio.gather(*(self.remove(q, reason="call_ended") for q in list(self.participants.values())))

    def stats(self) -> dict[str, Any]:
        return {
            session: {
                "user_id": q.user_id,
                "published": {kind: {"muted": q.muted.get(kind, False)} for kind in set(q.pub_mids.values())},
                "downtracks": [
                    {
                        "kind": s.get("type"),
                        "source": (
                            self.by_feed[int(s["feed_id"])].session_id
                            if int(s["feed_id"]) in self.by_feed
                            else None
                        ),
                        "paused": not q.sends(mid, s),
                    }
                    for mid, s in q.sub_streams.items()
                ],
            }
            for session, q in self.participants.items()
        }
