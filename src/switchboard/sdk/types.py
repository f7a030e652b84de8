"""The SDK's small value types: users, call types, members, track options, preferences.

Each checks its fields when built and raises :class:`~switchboard.errors.InvalidRequestError` for a
value the server would refuse (ids follow the coordinator's identifier rule, see
:mod:`switchboard.sdk.validation`), so a mistake fails where it is written.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import Enum, StrEnum
from typing import Any

from switchboard.errors import InvalidRequestError
from switchboard.media.audio_config import AudioConfigurationPolicy
from switchboard.protocol.coordinator import RejectReason
from switchboard.sdk.validation import (
    MEMBER_ROLES,
    require_identifier,
    require_instance,
)

__all__ = [
    "AudioConfigurationPolicy",
    "CallConnectOptions",
    "CallPreferences",
    "CallStatus",
    "CallType",
    "MemberRequest",
    "MultiCallAudioPolicy",
    "RejectReason",
    "TrackOption",
    "User",
    "as_member_requests",
]


@dataclass(frozen=True)
class User:
    id: str
    name: str | None = None
    image: str | None = None
    custom: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        require_identifier(self.id, "User id")
        if self.name is not None:
            require_instance(self.name, str, "User name")
        if self.image is not None:
            require_instance(self.image, str, "User image")
        require_instance(self.custom, dict, "User custom")

    @classmethod
    def regular(
        cls,
        user_id: str,
        name: str | None = None,
        image: str | None = None,
        custom: dict[str, Any] | None = None,
    ) -> User:
        return cls(user_id, name, image, dict(custom or {}))


@dataclass(frozen=True)
class CallType:
    name: str

    def __post_init__(self) -> None:
        require_identifier(self.name, "call type")

    @classmethod
    def default(cls) -> CallType:
        return cls("default")

    @classmethod
    def livestream(cls) -> CallType:
        return cls("livestream")

    @classmethod
    def audio_room(cls) -> CallType:
        return cls("audio_room")

    @classmethod
    def development(cls) -> CallType:
        return cls("development")

    @classmethod
    def custom(cls, name: str) -> CallType:
        return cls(name)

    def __str__(self) -> str:
        return self.name


@dataclass(frozen=True)
class MemberRequest:
    """A member to add to a call: ``MemberRequest("bob")`` or ``MemberRequest("bob", role="host")``.

    ``role`` is one of ``admin``, ``host``, ``call_member`` (None: ``call_member``). Raises
    InvalidRequestError for an invalid user id or role.
    """

    user_id: str
    role: str | None = None
    custom: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        require_identifier(self.user_id, "MemberRequest user_id")
        if self.role is not None and self.role not in MEMBER_ROLES:
            raise InvalidRequestError(
                f"MemberRequest role {self.role!r} is not valid: use one of {', '.join(MEMBER_ROLES)} or None"
            )
        require_instance(self.custom, dict, "MemberRequest custom")


def as_member_requests(members: object, what: str = "members") -> list[MemberRequest]:
    """``members`` as MemberRequests: each item a :class:`MemberRequest` or a plain user id string.

    None is an empty list. Raises InvalidRequestError for a bare string (not a list) or any other item.
    """
    if members is None:
        return []
    if isinstance(members, str | bytes) or not isinstance(members, Iterable):
        raise InvalidRequestError(
            f"{what} must be a list of user ids or MemberRequests, not {type(members).__name__} {members!r}"
        )
    result: list[MemberRequest] = []
    for index, item in enumerate(members):
        if isinstance(item, MemberRequest):
            result.append(item)
        elif isinstance(item, str):
            result.append(MemberRequest(item))
        else:
            raise InvalidRequestError(
                f"{what}[{index}] must be a user id string or a MemberRequest, "
                f"not {type(item).__name__} {item!r}"
            )
    return result


class CallStatus(StrEnum):
    IDLE = "idle"
    OUTGOING = "outgoing"
    INCOMING = "incoming"
    JOINING = "joining"
    JOINED = "joined"
    RECONNECTING = "reconnecting"
    DISCONNECTED = "disconnected"


class MultiCallAudioPolicy(Enum):
    """What the SDK does to calls' audio automatically when a call joins or leaves (SPEC §2.2, §2.8)."""

    SUSPEND_EXISTING = "suspend_existing"
    SUSPEND_INCOMING = "suspend_incoming"
    MANUAL = "manual"
    #: like SUSPEND_EXISTING on join; on leave, focus returns to the call(s) that had it before
    RESTORE_PREVIOUS = "restore_previous"


class SuspendMode(StrEnum):
    """How a suspended call sounds at this client (SPEC §2.8).

    ``SILENT``: its remote audio is neither decoded nor played, and the SFU stops forwarding it.
    ``DUCKED``: its remote audio keeps playing at ``ClientOptions.duck_gain_db`` (default -18 dB).
    In both the microphone stops reaching the call.
    """

    SILENT = "silent"
    DUCKED = "ducked"


@dataclass(frozen=True)
class TrackOption:
    """How a call should treat the microphone or camera at join: on, off, or a track you provide."""

    state: str
    track: Any = None

    def __post_init__(self) -> None:
        if self.state not in ("enabled", "disabled", "provided"):
            raise InvalidRequestError(
                f"TrackOption state {self.state!r} is not valid: use TrackOption.enabled(), "
                "TrackOption.disabled() or TrackOption.provided(track)"
            )

    @classmethod
    def enabled(cls) -> TrackOption:
        return cls("enabled")

    @classmethod
    def disabled(cls) -> TrackOption:
        return cls("disabled")

    @classmethod
    def provided(cls, track: Any) -> TrackOption:
        if track is None:
            raise InvalidRequestError("TrackOption.provided() needs a track")
        return cls("provided", track)

    @property
    def is_on(self) -> bool:
        return self.state != "disabled"


@dataclass(frozen=True)
class CallConnectOptions:
    microphone: TrackOption | None = None
    camera: TrackOption | None = None

    def __post_init__(self) -> None:
        for name in ("microphone", "camera"):
            value = getattr(self, name)
            if value is not None:
                require_instance(value, TrackOption, f"CallConnectOptions {name}")


@dataclass(frozen=True)
class CallPreferences:
    """Per-call preferences. ``priority``: under SUSPEND_EXISTING and RESTORE_PREVIOUS a call joining
    with a lower priority than the focused call joins suspended instead of taking focus (SPEC §2.8)."""

    audio_configuration_policy: AudioConfigurationPolicy | None = None
    priority: int = 0

    def __post_init__(self) -> None:
        if isinstance(self.priority, bool) or not isinstance(self.priority, int):
            raise InvalidRequestError(f"CallPreferences priority must be an int, got {self.priority!r}")
        if self.audio_configuration_policy is not None:
            require_instance(
                self.audio_configuration_policy,
                AudioConfigurationPolicy,
                "CallPreferences audio_configuration_policy",
            )
