"""What both SFU engines decide the same way about sessions, whatever forwards the media.

The embedded engine (``server/sfu/``) and the Janus engine (``server/sfu_janus/``) differ in how a
stream is forwarded or held back; *whether* it is forwarded, what a session looks like to the
others, and whom a moderator's command acts on are written once here:

* **pauses** a subscriber asks for (``update_subscription``, ``join {audio_paused}``): a set of
  ``(publisher session or None for all, kind)``, bounded by one entry per kind plus one per kind
  for each session in the call (:func:`apply_pause`, :func:`forget_session`);
* the **audience** of a publisher's audio (``update_audience``, SPEC §2.8 whisper): the users it is
  forwarded to, None for everyone (:func:`audience_of`, :func:`outside_audience`);
* :func:`forwarding_paused`: a publisher's ``kind`` is held back from one subscriber when that
  subscriber paused it or, for audio, is outside the publisher's audience;
* :func:`participant_info` and :func:`audience_changed`: the messages that show a session to the
  others (``docs/protocol.md``);
* :func:`moderation_targets`: the sessions a moderator's command names (never the moderator's own
  when it acts on everyone);
* :class:`CallSessions`: one call's sessions by id, the broadcast to them, the join/leave hook and
  the reconnect grace (removal timers).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Collection, Iterable
from typing import Any, Generic, Literal, Protocol, TypeVar

from switchboard.protocol import sfu as p
from switchboard.protocol.tokens import SfuGrants

log = logging.getLogger("switchboard.sfu")


class BackgroundTasks:
    """The tasks one session (or listener) runs beside its socket: kept referenced until done, each
    failure logged naming ``owner``, all cancelled by :meth:`cancel` when the owner closes."""

    def __init__(self, owner: object) -> None:
        self._owner = owner
        self._tasks: set[asyncio.Task[None]] = set()

    def spawn(self, coro: Awaitable[None]) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("%s: background task failed", self._owner, exc_info=task.exception())

    def cancel(self) -> None:
        """Cancel every task but the one calling (a task may close its own owner)."""
        for task in list(self._tasks):
            if task is not asyncio.current_task():
                task.cancel()


Kind = Literal["audio", "video"]
#: one pause a subscriber asked for: (publisher session id, or None for every publisher; kind)
PauseKey = tuple[str | None, Kind]
#: the users a publisher's audio goes to; None: everyone in the call
Audience = frozenset[str] | None

ParticipantHook = Callable[[str, str, str, bool], Awaitable[None]]
"""(call cid, user id, session id, joined) -> None: told when a session joins or leaves."""


def apply_pause(paused: set[PauseKey], session_id: str | None, kind: Kind, pause: bool) -> set[PauseKey]:
    """``paused`` after a subscriber paused (``pause``) or resumed ``kind`` of ``session_id``.

    Resuming ``kind`` for every publisher (``session_id`` None) also lifts the per-publisher pauses
    of that kind (``docs/protocol.md``, ``update_subscription``).
    """
    key: PauseKey = (session_id, kind)
    if pause:
        return paused | {key}
    if session_id is None:
        return {k for k in paused if k[1] != kind}
    return paused - {key}


def forget_session(paused: set[PauseKey], session_id: str) -> set[PauseKey]:
    """``paused`` without the entries naming ``session_id`` (it left the call: bounded memory)."""
    return {key for key in paused if key[0] != session_id}


def asked_paused(paused: Collection[PauseKey], session_id: str, kind: Kind) -> bool:
    """The subscriber paused ``kind`` of every publisher, or of ``session_id``."""
    return (None, kind) in paused or (session_id, kind) in paused


def audience_of(user_ids: Iterable[str] | None) -> Audience:
    """The audience an ``update_audience`` asks for (None: everyone)."""
    return frozenset(user_ids) if user_ids is not None else None


def outside_audience(audience: Audience, user_id: str, kind: Kind) -> bool:
    """``user_id`` may not hear this publisher: its audio goes only to ``audience`` (SPEC §2.8)."""
    return kind == "audio" and audience is not None and user_id not in audience


def forwarding_paused(
    paused: Collection[PauseKey],
    subscriber_user_id: str,
    publisher_session_id: str,
    publisher_audience: Audience,
    kind: Kind,
) -> bool:
    """Whether the publisher's ``kind`` is held back from this subscriber: the subscriber paused it,
    or (audio) the subscriber's user is outside the publisher's audience (SPEC §2.8)."""
    return asked_paused(paused, publisher_session_id, kind) or outside_audience(
        publisher_audience, subscriber_user_id, kind
    )


def audience_list(audience: Audience) -> list[str] | None:
    """An audience as sent to clients: sorted user ids, or None for everyone."""
    return sorted(audience) if audience is not None else None


def participant_info(
    user_id: str, session_id: str, tracks: Iterable[tuple[Kind, bool]], audience: Audience
) -> p.ParticipantInfo:
    """How a session looks to the others: its published ``(kind, muted)`` tracks and its audience."""
    return p.ParticipantInfo(
        user_id=user_id,
        session_id=session_id,
        tracks=[p.TrackInfo(kind=kind, muted=muted) for kind, muted in tracks],
        audience=audience_list(audience),
    )


def audience_changed(user_id: str, session_id: str, audience: Audience) -> p.AudienceChanged:
    """What everyone in the call is told when a session's audience changes."""
    return p.AudienceChanged(user_id=user_id, session_id=session_id, user_ids=audience_list(audience))


class _UserSession(Protocol):
    @property
    def user_id(self) -> str: ...


U = TypeVar("U", bound=_UserSession)


def moderation_targets(sessions: Iterable[U], command: p.ModerationCommand) -> list[U]:
    """The sessions ``command`` acts on: those of ``command.user_ids``, or (None) everyone's but the
    moderator's own."""
    if command.user_ids is None:
        return [q for q in sessions if q.user_id != command.by]
    wanted = set(command.user_ids)
    return [q for q in sessions if q.user_id in wanted]


class _Session(Protocol):
    @property
    def user_id(self) -> str: ...
    @property
    def session_id(self) -> str: ...
    def spawn(self, coro: Awaitable[None]) -> None: ...
    def detach(self) -> None: ...
    async def send(self, message: Any) -> None: ...


S = TypeVar("S", bound=_Session)


class CallSessions(Generic[S]):
    """One call's sessions (by session id) and what every engine's room does with them alike.

    Subclasses add and remove sessions (``remove(participant, reason=...)``) the engine's way; this
    class broadcasts, tells the ``on_participant`` hook, and holds the reconnect grace timers.
    """

    def __init__(self, cid: str, *, on_participant: ParticipantHook | None = None) -> None:
        self.cid = cid
        self.participants: dict[str, S] = {}
        self._removal_timers: dict[str, asyncio.TimerHandle] = {}
        self._on_participant = on_participant

    def others(self, participant: S) -> list[S]:
        return [q for q in self.participants.values() if q is not participant]

    async def broadcast(self, message: p._Msg, *, exclude: S | None) -> None:
        """Send ``message`` to every session but ``exclude`` (a failed send does not stop the rest)."""
        await asyncio.gather(
            *(q.send(message) for q in self.participants.values() if q is not exclude), return_exceptions=True
        )

    async def _notify(self, participant: S, joined: bool) -> None:
        if self._on_participant is not None:
            try:
                await self._on_participant(self.cid, participant.user_id, participant.session_id, joined)
            except Exception:
                log.exception("%s: participant hook failed", self.cid)

    async def remove(self, participant: S, *, reason: str = "left") -> None:
        raise NotImplementedError

    def schedule_removal(self, participant: S, grace: float) -> None:
        """The socket dropped without a leave: remove the session unless it reconnects within ``grace``
        seconds (``participant_left`` reason ``vanished``)."""
        participant.detach()
        loop = asyncio.get_running_loop()
        self._removal_timers[participant.session_id] = loop.call_later(
            grace, lambda: participant.spawn(self.remove(participant, reason="vanished"))
        )

    def cancel_removal(self, participant: S) -> None:
        timer = self._removal_timers.pop(participant.session_id, None)
        if timer is not None:
            timer.cancel()


async def apply_moderation(
    room: CallSessions[S],
    command: p.ModerationCommand,
    *,
    regrant: Callable[[S, SfuGrants], None],
    mute: Callable[[S, list[p.TrackKind]], None],
) -> int:
    """Apply a moderator's ``command`` to ``room`` as every engine does; the number of sessions it
    acted on. The engine's part: ``regrant`` applies new grants to one session, ``mute`` stops
    forwarding kinds of one session until its own client unmutes them; this part tells everyone
    (``mute_state_changed``, ``moderation_notice``) and removes sessions (reason ``removed``)."""
    sessions = moderation_targets(list(room.participants.values()), command)
    for participant in sessions:
        if command.action == "grants":
            if command.grants is not None:
                regrant(participant, command.grants)
        elif command.action == "mute":
            mute(participant, command.kinds)
            for kind in command.kinds:
                await room.broadcast(
                    p.MuteStateChanged(
                        user_id=participant.user_id, session_id=participant.session_id, kind=kind, muted=True
                    ),
                    exclude=None,
                )
            await participant.send(p.ModerationNotice(action="muted", by=command.by, kinds=command.kinds))
        else:
            await participant.send(
                p.ModerationNotice(action="removed", by=command.by, blocked=command.blocked)
            )
            await room.remove(participant, reason="removed")
    return len(sessions)
