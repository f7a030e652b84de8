"""switchboard: real-time audio/video calls in Python, with several calls joined at once (multicall).

The SDK's public names live here; the server is :mod:`switchboard.server`, devices are
:mod:`switchboard.media`, errors are :mod:`switchboard.errors`.
"""

from switchboard.media.audio_config import AudioConfigurationPolicy
from switchboard.sdk.call import Call, CallState, Member, Participant
from switchboard.sdk.client import ClientOptions, VideoClient
from switchboard.sdk.observable import Observable
from switchboard.sdk.types import (
    CallConnectOptions,
    CallPreferences,
    CallStatus,
    CallType,
    MemberRequest,
    MultiCallAudioPolicy,
    RejectReason,
    SuspendMode,
    TrackOption,
    User,
)

__version__ = "0.1.0"

__all__ = [
    "AudioConfigurationPolicy",
    "Call",
    "CallConnectOptions",
    "CallPreferences",
    "CallState",
    "CallStatus",
    "CallType",
    "ClientOptions",
    "Member",
    "MemberRequest",
    "MultiCallAudioPolicy",
    "Observable",
    "Participant",
    "RejectReason",
    "SuspendMode",
    "TrackOption",
    "User",
    "VideoClient",
]
