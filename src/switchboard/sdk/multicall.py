"""The active-call list and the multi-call audio policies (SPEC §2.1, §2.2, §2.4).

``join()`` adds a call to ``client.state.active_calls`` *before* connecting; leave, end, remote end
and a failed join remove it. The policy acts at exactly those two moments:

=================  ==========================================  ==========================================
policy             call N added                                call X removed
=================  ==========================================  ==========================================
SUSPEND_EXISTING   every other active call is suspended        the most recently added remaining call
                                                               is resumed
SUSPEND_INCOMING   N is suspended if another call is active    nothing
MANUAL             nothing                                     nothing
RESTORE_PREVIOUS   every other active call is suspended        if X had focus: the call(s) that had focus
                                                               just before X took it are resumed
=================  ==========================================  ==========================================

Priority (SPEC §2.8): under SUSPEND_EXISTING and RESTORE_PREVIOUS a call N whose
``CallPreferences.priority`` is lower than the highest priority among the unsuspended calls joins
suspended and takes nothing from them. RESTORE_PREVIOUS keeps a focus stack: each call that gains
focus (by joining or through ``switch_focus``) records the calls that had it before; when it leaves,
those of them still active get focus back (if none is left, the most recently focused remaining call).

Single-call mode (``allow_multiple_active_calls=False``) ignores the policy: joining B while A is
active suspends A while B connects, leaves A (reason ``replaced``) once B is connected, and resumes A
if B's join fails, so a failed join never costs you your call. Asking for ``SUSPEND_INCOMING`` or
``MANUAL`` without multi-call mode is therefore almost certainly a mistake: ``ClientOptions`` warns
(:func:`warn_if_policy_ignored`) rather than refusing, since the options are still usable.
"""

from __future__ import annotations

import asyncio
import logging
import warnings
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from switchboard.errors import CallStateError
from switchboard.sdk.types import CallStatus, MultiCallAudioPolicy, SuspendMode

if TYPE_CHECKING:
    from switchboard.sdk.call import Call
    from switchboard.sdk.client import VideoClient

log = logging.getLogger("switchboard.multicall")

#: the statuses in which a call's audio can be suspended (Call.suspend_audio refuses the others)
_IN_CALL = (CallStatus.JOINING, CallStatus.JOINED, CallStatus.RECONNECTING)
#: the policies under which a joining call takes focus from the others (unless its priority is lower)
_NEWEST_WINS = (MultiCallAudioPolicy.SUSPEND_EXISTING, MultiCallAudioPolicy.RESTORE_PREVIOUS)


class PolicyIgnoredWarning(UserWarning):
    """A multi-call audio policy was set on a client in single-call mode, where it has no effect."""


def warn_if_policy_ignored(allow_multiple_active_calls: bool, policy: MultiCallAudioPolicy) -> None:
    """Warn (:class:`PolicyIgnoredWarning`) when ``policy`` would be silently ignored (SPEC §2.1).

    The default ``SUSPEND_EXISTING`` is not warned about: single-call mode already behaves like it
    (the newest call wins), except that the previous call is left rather than kept suspended.
    """
    if allow_multiple_active_calls or policy is MultiCallAudioPolicy.SUSPEND_EXISTING:
        return
    warnings.warn(
        f"multi_call_audio_policy={policy} has no effect without allow_multiple_active_calls=True: "
        "in single-call mode joining a call leaves the previous one; set "
        "ClientOptions(allow_multiple_active_calls=True, ...) to keep several calls joined",
        PolicyIgnoredWarning,
        stacklevel=4,
    )


@dataclass(frozen=True)
class Handover:
    """Single-call mode: the call a joining call replaces, and whether the user had suspended it."""

    previous: Call
    was_suspended: bool


class ActiveCalls:
    def __init__(self, client: VideoClient) -> None:
        self._client = client
        #: serialises focus changes: policy actions and switch_focus never interleave
        self.focus_lock = asyncio.Lock()
        self._contended = False
        #: RESTORE_PREVIOUS focus stack: calls in the order they last gained focus (last = newest)
        self._focus_order: list[Call] = []
        #: for each call that gained focus, the calls that had focus just before it
        self._focus_before: dict[Call, tuple[Call, ...]] = {}

    @property
    def calls(self) -> list[Call]:
        return list(self._client.state.active_calls.value)

    def _set(self, calls: list[Call]) -> None:
        self._client.state.active_calls._set(calls)

    @property
    def _multi(self) -> bool:
        return self._client.options.allow_multiple_active_calls

    @property
    def _policy(self) -> MultiCallAudioPolicy:
        return self._client.options.multi_call_audio_policy

    async def join_started(self, call: Call) -> Handover | None:
        """``call`` starts joining. Returns the hand-over from the call it replaces (single-call mode)."""
        async with self.focus_lock:
            calls = self.calls
            if call in calls:
                return None
            if not self._multi:
                previous = calls[0] if calls else None
                self._set([call])
                if previous is None:
                    return None
                handover = Handover(previous, previous.state.value.is_audio_suspended)
                await previous._suspend(reason="handover", mode=SuspendMode.SILENT)
                return handover
            self._set([*calls, call])
            if self._policy in _NEWEST_WINS:
                focused = [c for c in calls if not c.state.value.is_audio_suspended]
                top = max((c.preferences.priority for c in focused), default=None)
                if top is not None and call.preferences.priority < top:
                    # lower priority than the focused call: join suspended, take nothing (SPEC §2.8)
                    await call.suspend_audio()
                    self._focus_order.insert(0, call)
                else:
                    # a call ended remotely is DISCONNECTED until removed() runs: nothing to suspend there
                    for other in calls:
                        if other.state.value.status in _IN_CALL:
                            await other.suspend_audio()
                    self._gained_focus(call, tuple(focused))
            elif self._policy is MultiCallAudioPolicy.SUSPEND_INCOMING and calls:
                await call.suspend_audio()
            self.check_contention()
            return None

    async def join_succeeded(self, call: Call, handover: Handover | None) -> None:
        if handover is not None:
            await handover.previous._leave(reason="replaced")

    async def join_failed(self, call: Call, handover: Handover | None) -> None:
        if handover is None:
            await self.removed(call)
            return
        previous = handover.previous
        async with self.focus_lock:
            if self.calls != [call]:
                return
            if previous.is_live:  # still joined: the failed join does not cost it (SPEC §2.4.6)
                self._set([previous])
                if not handover.was_suspended:
                    await previous._resume(reason="handover")
            else:
                self._set([])

    async def removed(self, call: Call) -> None:
        """``call`` left, ended or failed: drop it from the list and let the policy react."""
        async with self.focus_lock:
            calls = self.calls
            if call not in calls:
                return
            stack = self.focus_stack  # (a left call's suspension is already reset: ask the stack)
            had_focus = bool(stack) and stack[-1] is call
            calls.remove(call)
            self._set(calls)
            before = self._focus_before.pop(call, ())
            if call in self._focus_order:
                self._focus_order.remove(call)
            if self._multi and calls:
                if self._policy is MultiCallAudioPolicy.SUSPEND_EXISTING:
                    await calls[-1].resume_audio()
                elif self._policy is MultiCallAudioPolicy.RESTORE_PREVIOUS and had_focus:
                    await self._restore(before, calls)
            self.check_contention()

    def _gained_focus(self, call: Call, before: tuple[Call, ...]) -> None:
        """Push ``call`` on the focus stack, remembering who had focus before it (RESTORE_PREVIOUS)."""
        if call in self._focus_order:
            self._focus_order.remove(call)
        self._focus_order.append(call)
        self._focus_before[call] = tuple(c for c in before if c is not call)

    @property
    def focus_stack(self) -> list[Call]:
        """Active calls in the order they last gained focus, newest last (RESTORE_PREVIOUS)."""
        return [c for c in self._focus_order if c in self.calls]

    async def _restore(self, before: tuple[Call, ...], calls: list[Call]) -> None:
        """Give focus back to ``before`` (those still active), else to the most recently focused call."""
        back = [c for c in before if c in calls]
        if not back:
            stack = [c for c in self._focus_order if c in calls]
            back = [stack[-1]] if stack else [calls[-1]]
        for c in back:
            if c.state.value.status in _IN_CALL:
                await c.resume_audio()

    def check_contention(self) -> None:
        """Warn once each time a second unsuspended call starts to share the mic and speaker."""
        live = [c for c in self.calls if not c.state.value.is_audio_suspended]
        if len(live) >= 2 and not self._contended:
            self._contended = True
            log.warning(
                "%d calls share the microphone and speaker unsuspended (%s): they contend for the devices; "
                "suspend_audio() all but one",
                len(live),
                ", ".join(c.cid for c in live),
            )
        elif len(live) < 2:
            self._contended = False

    async def switch_focus(self, from_call: Call, to_call: Call) -> None:
        """Move the user's microphone/camera and the audio focus from one joined call to another."""
        if from_call is to_call:
            raise CallStateError("switch_focus needs two different calls")
        async with self.focus_lock:
            for c in (from_call, to_call):
                if c not in self.calls or c.state.value.status is not CallStatus.JOINED:
                    raise CallStateError(
                        f"switch_focus needs two calls joined by this client; {c.cid} is not"
                    )
            before = {c: _Focus.of(c) for c in (from_call, to_call)}
            mic_on, cam_on = before[from_call].mic, before[from_call].camera
            steps: list[tuple[str, Callable[[], Awaitable[None]]]] = [
                (
                    "turn off the microphone in the call losing focus",
                    lambda: from_call.set_microphone_enabled(False),
                ),
                ("turn off the camera in the call losing focus", lambda: from_call.set_camera_enabled(False)),
                ("suspend the call losing focus", from_call.suspend_audio),
                ("resume the call gaining focus", to_call.resume_audio),
                (
                    "restore the microphone in the call gaining focus",
                    lambda: to_call._set_microphone_if_allowed(mic_on),
                ),
                (
                    "restore the camera in the call gaining focus",
                    lambda: to_call._set_camera_if_allowed(cam_on),
                ),
            ]
            for index, (name, step) in enumerate(steps):
                try:
                    await step()
                except Exception as exc:
                    for call, focus in before.items():
                        await focus.restore(call)
                    raise CallStateError(
                        f"switch_focus failed at step {index + 1} ({name}): {exc}; both calls were put back"
                    ) from exc
            self._gained_focus(to_call, (from_call,))
            self.check_contention()


@dataclass(frozen=True)
class _Focus:
    """What switch_focus may change on one call, to put it back if a step fails."""

    suspended: bool
    mic: bool
    camera: bool

    @classmethod
    def of(cls, call: Call) -> _Focus:
        return cls(call.state.value.is_audio_suspended, call.microphone_enabled, call.camera_enabled)

    async def restore(self, call: Call) -> None:
        actions: list[Callable[[], Awaitable[None]]] = [
            call.suspend_audio if self.suspended else call.resume_audio,
            lambda: call._set_microphone_if_allowed(self.mic),
            lambda: call._set_camera_if_allowed(self.camera),
        ]
        for action in actions:
            try:
                await action()
            except Exception as exc:
                log.error("switch_focus: putting %s back failed: %s", call.cid, exc)
