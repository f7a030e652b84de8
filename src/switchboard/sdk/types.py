"""The SDK's small value types: users, call types, members, track options, preferences."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum, StrEnum
from typing import Any

from switchboard.media.audio_config import AudioConfigurationPolicy
from switchboard.protocol.coordinator import RejectReason

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
]


@dataclass(frozen=True)
class User:
    id: str
    name: str | None = None
    image: str | None = None
    custom: dict[str, Any] = field(default_factory=dict)

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
    user_id: str
    role: str | None = None
    custom: dict[str, Any] = field(default_factory=dict)


class CallStatus(StrEnum):
    IDLE = "idle"
    OUTGOING = "outgoing"
    INCOMING = "incoming"
    JOINING = "joining"
    JOINED = "joined"
    RECONNECTING = "reconnecting"
    DISCONNECTED = "disconnected"


class MultiCallAudioPolicy(Enum):
    """What the SDK does to calls' audio automatically when a call joins or leaves (SPEC §2.2)."""

    SUSPEND_EXISTING = "suspend_existing"
    SUSPEND_INCOMING = "suspend_incoming"
    MANUAL = "manual"


@dataclass(frozen=True)
class TrackOption:
    """How a call should treat the microphone or camera at join: on, off, or a track you provide."""

    state: str
    track: Any = None

    @classmethod
    def enabled(cls) -> TrackOption:
        return cls("enabled")

    @classmethod
    def disabled(cls) -> TrackOption:
        return cls("disabled")

    @classmethod
    def provided(cls, track: Any) -> TrackOption:
        if track is None:
            raise ValueError("TrackOption.provided() needs a track")
        return cls("provided", track)

    @property
    def is_on(self) -> bool:
        return self.state != "disabled"


@dataclass(frozen=True)
class CallConnectOptions:
    microphone: TrackOption | None = None
    camera: TrackOption | None = None


@dataclass(frozen=True)
class CallPreferences:
    audio_configuration_policy: AudioConfigurationPolicy | None = None
