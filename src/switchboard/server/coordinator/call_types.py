"""The built-in call types (SPEC §2.7): default settings, roles and grants, and capability checks."""

from __future__ import annotations

from dataclasses import dataclass, field

from switchboard.protocol.coordinator import (
    AudioSettings,
    BackstageSettings,
    CallSettings,
    CallSettingsRequest,
    Capability,
    RingSettings,
    VideoSettings,
)

ALL_CAPABILITIES: frozenset[Capability] = frozenset(Capability)
_BASE = frozenset({Capability.READ_CALL, Capability.JOIN_CALL})
_SEND_BOTH = frozenset({Capability.SEND_AUDIO, Capability.SEND_VIDEO})

#: Roles every call type knows. ``user`` is a signed-in user who is not a member.
ROLES = ("admin", "host", "call_member", "user")
PRIVILEGED_ROLES = frozenset({"admin", "host"})


@dataclass(frozen=True)
class CallTypeDefinition:
    name: str
    settings: CallSettings
    #: capabilities per non-privileged role; ``host`` and ``admin`` hold every capability.
    grants: dict[str, frozenset[Capability]] = field(default_factory=dict)

    def capabilities(self, role: str) -> frozenset[Capability]:
        if role in PRIVILEGED_ROLES:
            return ALL_CAPABILITIES
        return self.grants.get(role, frozenset())


def _settings(*, mic: bool, camera: bool, backstage: bool, ring_ms: int, video: bool = True) -> CallSettings:
    return CallSettings(
        audio=AudioSettings(mic_default_on=mic),
        video=VideoSettings(enabled=video, camera_default_on=camera),
        backstage=BackstageSettings(enabled=backstage),
        ring=RingSettings(incoming_call_timeout_ms=ring_ms, auto_cancel_timeout_ms=ring_ms),
    )


CALL_TYPES: dict[str, CallTypeDefinition] = {
    "default": CallTypeDefinition(
        "default",
        _settings(mic=True, camera=True, backstage=False, ring_ms=15000),
        {"call_member": _BASE | _SEND_BOTH, "user": _BASE | _SEND_BOTH},
    ),
    "livestream": CallTypeDefinition(
        "livestream",
        _settings(mic=False, camera=True, backstage=True, ring_ms=0),
        {"call_member": _BASE, "user": _BASE},
    ),
    "audio_room": CallTypeDefinition(
        "audio_room",
        _settings(mic=False, camera=False, backstage=True, ring_ms=0, video=False),
        {"call_member": _BASE, "user": _BASE},
    ),
    "development": CallTypeDefinition(
        "development",
        _settings(mic=True, camera=True, backstage=False, ring_ms=15000),
        {role: ALL_CAPABILITIES for role in ("call_member", "user")},
    ),
}


def call_type(name: str) -> CallTypeDefinition | None:
    return CALL_TYPES.get(name)


def apply_override(settings: CallSettings, override: CallSettingsRequest | None) -> CallSettings:
    """``settings`` with the fields ``override`` sets replaced."""
    if override is None:
        return settings
    merged = settings.model_dump()
    for section, values in override.model_dump(exclude_none=True).items():
        merged[section].update(values)
    return CallSettings.model_validate(merged)


def own_capabilities(
    definition: CallTypeDefinition, role: str, *, backstage: bool, settings: CallSettings
) -> list[Capability]:
    """What a user with ``role`` may do in a call of this type right now."""
    caps = set(definition.capabilities(role))
    if backstage and role not in PRIVILEGED_ROLES:
        # Backstage: only hosts and admins may join; the audience waits for go_live().
        caps.discard(Capability.JOIN_CALL)
    if not settings.video.enabled:
        caps.discard(Capability.SEND_VIDEO)
    return sorted(caps, key=lambda c: list(Capability).index(c))
