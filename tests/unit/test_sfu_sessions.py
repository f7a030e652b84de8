"""The rules both SFU engines share (``server/sfu/sessions.py``): pauses, audiences, moderation targets."""

from __future__ import annotations

from dataclasses import dataclass

from switchboard.protocol import sfu as p
from switchboard.server.sfu.sessions import (
    PauseKey,
    apply_pause,
    audience_changed,
    audience_of,
    forget_session,
    forwarding_paused,
    moderation_targets,
    participant_info,
)


def test_pauses_per_publisher_and_for_all() -> None:
    paused: set[PauseKey] = set()
    paused = apply_pause(paused, "s1", "audio", True)
    paused = apply_pause(paused, "s2", "audio", True)
    paused = apply_pause(paused, "s2", "video", True)
    assert forwarding_paused(paused, "me", "s1", None, "audio")
    assert not forwarding_paused(paused, "me", "s3", None, "audio")
    paused = apply_pause(paused, "s1", "audio", False)
    assert paused == {("s2", "audio"), ("s2", "video")}
    paused = apply_pause(paused, None, "audio", True)
    assert forwarding_paused(paused, "me", "s3", None, "audio")
    # resuming a kind for everyone lifts that kind's per-publisher pauses too, not the other kind's
    paused = apply_pause(paused, None, "audio", False)
    assert paused == {("s2", "video")}
    assert forget_session(paused, "s2") == set()


def test_audience_holds_back_audio_only_and_only_from_outsiders() -> None:
    audience = audience_of(["agent"])
    assert not forwarding_paused(set(), "agent", "sup", audience, "audio")
    assert forwarding_paused(set(), "customer", "sup", audience, "audio")
    assert not forwarding_paused(set(), "customer", "sup", audience, "video")
    assert not forwarding_paused(set(), "customer", "sup", audience_of(None), "audio")
    assert forwarding_paused(set(), "me", "sup", audience_of([]), "audio")  # whispering to nobody


def test_what_the_others_are_told() -> None:
    info = participant_info("sup", "s1", [("audio", False), ("video", True)], audience_of(["b", "a"]))
    assert info.audience == ["a", "b"]
    assert [(t.kind, t.muted) for t in info.tracks] == [("audio", False), ("video", True)]
    assert participant_info("sup", "s1", [], None).audience is None
    changed = audience_changed("sup", "s1", audience_of(["z", "y"]))
    assert (changed.type, changed.user_ids) == ("audience_changed", ["y", "z"])
    assert audience_changed("sup", "s1", None).user_ids is None


@dataclass
class _Session:
    user_id: str


def test_moderation_targets_never_the_moderator_when_acting_on_everyone() -> None:
    sessions = [_Session("mod"), _Session("a"), _Session("b"), _Session("a")]
    everyone = p.ModerationCommand(cid="c", action="mute", by="mod", kinds=["audio"])
    assert [s.user_id for s in moderation_targets(sessions, everyone)] == ["a", "b", "a"]
    named = p.ModerationCommand(cid="c", action="remove", by="mod", user_ids=["a", "mod"])
    assert [s.user_id for s in moderation_targets(sessions, named)] == ["mod", "a", "a"]
