"""HS256 JWTs: user tokens (coordinator) and SFU tokens (media), both signed with the API secret."""

from __future__ import annotations

import secrets
import time
import uuid

import jwt
from pydantic import BaseModel, ConfigDict, ValidationError

from switchboard.errors import AuthenticationError

ALGORITHM = "HS256"
SFU_AUDIENCE = "switchboard-sfu"
DEFAULT_SFU_TOKEN_TTL = 300.0


class UserClaims(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    user_id: str
    iat: int
    exp: int | None = None


class SfuGrants(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    send_audio: bool = False
    send_video: bool = False


class SfuClaims(BaseModel):
    """What the SFU trusts about a participant: who, which call, which session, what it may publish."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    user_id: str
    call_cid: str
    session_id: str
    grants: SfuGrants
    iat: int
    exp: int


def generate_key_pair() -> tuple[str, str]:
    """A fresh development API key and secret."""
    return "key_" + secrets.token_hex(6), secrets.token_urlsafe(32)


def create_user_token(secret: str, user_id: str, ttl: float | None = None) -> str:
    """A user token for ``user_id``; ``ttl`` seconds of validity, or none (no ``exp``) when None."""
    if not user_id:
        raise ValueError("user_id must not be empty")
    now = int(time.time())
    claims: dict[str, object] = {"user_id": user_id, "iat": now}
    if ttl is not None:
        claims["exp"] = now + int(ttl) if ttl >= 1 else now + ttl
    return jwt.encode(claims, secret, algorithm=ALGORITHM)


def verify_user_token(secret: str, token: str) -> UserClaims:
    """Decode and check a user token; raises :class:`AuthenticationError` with the reason."""
    try:
        payload = jwt.decode(token, secret, algorithms=[ALGORITHM], options={"require": ["user_id"]})
        claims = UserClaims.model_validate(payload)
    except jwt.ExpiredSignatureError as exc:
        raise AuthenticationError("token expired: sign a new user token", code="token_expired") from exc
    except (jwt.InvalidTokenError, ValidationError) as exc:
        raise AuthenticationError(f"invalid user token: {exc}", code="token_invalid") from exc
    if not claims.user_id:
        raise AuthenticationError("invalid user token: empty user_id", code="token_invalid")
    return claims


def create_sfu_token(
    secret: str,
    *,
    user_id: str,
    call_cid: str,
    session_id: str,
    grants: SfuGrants,
    ttl: float = DEFAULT_SFU_TOKEN_TTL,
) -> str:
    now = int(time.time())
    claims = {
        "user_id": user_id,
        "call_cid": call_cid,
        "session_id": session_id,
        "grants": grants.model_dump(),
        "iat": now,
        "exp": now + ttl,
        "aud": SFU_AUDIENCE,
    }
    return jwt.encode(claims, secret, algorithm=ALGORITHM)


def verify_sfu_token(secret: str, token: str) -> SfuClaims:
    try:
        payload = jwt.decode(
            token,
            secret,
            algorithms=[ALGORITHM],
            audience=SFU_AUDIENCE,
            options={"require": ["exp", "user_id", "call_cid", "session_id"]},
        )
        return SfuClaims.model_validate(payload)
    except jwt.ExpiredSignatureError as exc:
        raise AuthenticationError("SFU token expired: join the call again", code="token_expired") from exc
    except (jwt.InvalidTokenError, ValidationError) as exc:
        raise AuthenticationError(f"invalid SFU token: {exc}", code="token_invalid") from exc


ADMIN_AUDIENCE = "switchboard-admin"


def create_admin_token(secret: str, ttl: float = 3600.0) -> str:
    """A token for operator endpoints (``/sfu/stats``): only whoever holds the API secret can mint one."""
    now = int(time.time())
    return jwt.encode(
        {"role": "admin", "iat": now, "exp": now + ttl, "aud": ADMIN_AUDIENCE}, secret, ALGORITHM
    )


def verify_admin_token(secret: str, token: str) -> None:
    try:
        claims = jwt.decode(
            token, secret, algorithms=[ALGORITHM], audience=ADMIN_AUDIENCE, options={"require": ["exp"]}
        )
    except jwt.InvalidTokenError as exc:
        raise AuthenticationError(f"invalid admin token: {exc}", code="token_invalid") from exc
    if claims.get("role") != "admin":
        raise AuthenticationError("not an admin token", code="token_invalid")


def new_session_id() -> str:
    return uuid.uuid4().hex
