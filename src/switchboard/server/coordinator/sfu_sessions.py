"""The SFU sessions the coordinator has minted tokens for, so a token is bound to its session.

``join`` mints a session and its SFU token; the SFU asks :meth:`SfuSessions.check` (through the
coordinator) before admitting a token, and reports when the session leaves. A token is refused once
its session has left (replay) or when the grants it carries are no longer the user's grants (SPEC
§2.10), and a fresh token for a live session can be minted for a call that outlives the first one's
TTL. Memory is bounded: a session that never joined, or that left, is forgotten once its newest
token has expired (a forgotten session's tokens are refused as unknown).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from switchboard.errors import AuthenticationError
from switchboard.protocol.tokens import SfuClaims, SfuGrants


@dataclass
class SfuSession:
    cid: str
    user_id: str
    session_id: str
    grants: SfuGrants
    #: wall-clock expiry (s since the epoch) of the newest token minted for this session
    expires: float
    joined: bool = False
    left: bool = False


class SfuSessions:
    """In-memory registry of minted SFU sessions (one coordinator process)."""

    def __init__(self) -> None:
        self._sessions: dict[str, SfuSession] = {}
        self._next_prune = 0.0
        #: media sessions per call and user, as the SFU reports them (to tell when a caller left)
        self._media: dict[str, dict[str, set[str]]] = {}

    def __len__(self) -> int:
        return len(self._sessions)

    async def minted(
        self, cid: str, user_id: str, session_id: str, grants: SfuGrants, expires: float
    ) -> None:
        """A token for ``session_id`` was minted (first join, or a fresh token for the same session)."""
        self._prune()
        record = self._sessions.get(session_id)
        if record is None:
            self._sessions[session_id] = SfuSession(cid, user_id, session_id, grants, expires)
        else:
            record.grants = grants
            record.expires = max(record.expires, expires)

    async def get(self, session_id: str) -> SfuSession | None:
        return self._sessions.get(session_id)

    async def check(self, claims: SfuClaims) -> SfuSession:
        """The session a verified token names, or AuthenticationError: unknown, left, or stale grants.

        Codes: ``token_invalid`` (no such session, or not this user's / call's), ``session_ended``
        (the session left: a token is never admitted twice), ``grants_changed`` (the token's grants
        are not the session's current ones: ask the coordinator for a fresh token).
        """
        record = self._sessions.get(claims.session_id)
        if record is None or record.cid != claims.call_cid or record.user_id != claims.user_id:
            raise AuthenticationError("SFU token names an unknown session: join the call again")
        if record.left:
            raise AuthenticationError("this session has left the call: join again", code="session_ended")
        if record.grants != claims.grants:
            raise AuthenticationError(
                "the session's permissions changed since this SFU token was minted", code="grants_changed"
            )
        return record

    async def joined(self, session_id: str) -> None:
        record = self._sessions.get(session_id)
        if record is not None:
            record.joined = True

    async def left(self, session_id: str) -> None:
        record = self._sessions.get(session_id)
        if record is not None:
            record.left = True
        self._prune()

    async def media_changed(self, cid: str, user_id: str, session_id: str, joined: bool) -> int:
        """Count ``session_id`` in (``joined``) or out of the user's media sessions in ``cid``; returns how
        many that user still has there (0: the user left the call's media)."""
        sessions = self._media.setdefault(cid, {}).setdefault(user_id, set())
        if joined:
            sessions.add(session_id)
        else:
            sessions.discard(session_id)
        remaining = len(sessions)
        if not sessions:
            del self._media[cid][user_id]
        if not self._media[cid]:
            del self._media[cid]
        return remaining

    async def media_users(self, cid: str) -> dict[str, list[str]]:
        """Every user with media sessions in call ``cid`` (as the SFU reported them): their session ids."""
        return {user: sorted(sessions) for user, sessions in self._media.get(cid, {}).items()}

    async def media_sessions(self, cid: str, user_id: str) -> int:
        """How many media sessions ``user_id`` has in call ``cid`` (as the SFU reported them)."""
        return len(self._media.get(cid, {}).get(user_id, ()))

    async def media_session_ids(self, cid: str, user_id: str) -> set[str]:
        """The media sessions ``user_id`` has in call ``cid`` (as the SFU reported them)."""
        return set(self._media.get(cid, {}).get(user_id, ()))

    def _prune(self) -> None:
        now = time.time()
        if now < self._next_prune:
            return
        self._next_prune = now + 1.0
        for key in [k for k, r in self._sessions.items() if (r.left or not r.joined) and r.expires < now]:
            del self._sessions[key]
