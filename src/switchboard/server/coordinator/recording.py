"""Recording a call: the coordinator checks who may, tells the SFU, and announces it.

``POST .../start_recording`` and ``.../stop_recording`` need ``update-call`` (hosts and admins by
default); ``GET .../recordings`` needs ``read-call``. The SFU writes the files
(``server/sfu/recording.py``); the events ``call.recording_started`` and ``call.recording_stopped``
(with the files and their durations) go to the call.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from switchboard.errors import CallStateError
from switchboard.protocol import coordinator as m
from switchboard.protocol import sfu as p
from switchboard.protocol.coordinator import Capability, utcnow

if TYPE_CHECKING:
    from switchboard.server.coordinator.service import Coordinator

RecordingControl = Callable[[p.RecordingCommand], Awaitable[p.RecordingsReport]]


def _recording(info: p.RecordingInfo) -> m.CallRecording:
    return m.CallRecording(
        recording_id=info.recording_id,
        started_at=datetime.fromtimestamp(info.started_at, UTC),
        stopped_at=datetime.fromtimestamp(info.stopped_at, UTC) if info.stopped_at is not None else None,
        files=[m.RecordingFile.model_validate(f.model_dump()) for f in info.files],
    )


class CallRecordings:
    def __init__(self, coordinator: Coordinator) -> None:
        self._c = coordinator
        #: the SFU's recording control (set by the server that runs the SFU)
        self.sfu: RecordingControl | None = None

    async def _command(self, cid: str, action: str) -> p.RecordingsReport:
        if self.sfu is None:
            raise CallStateError("this server has no SFU to record with", code="recording_unavailable")
        return await self.sfu(p.RecordingCommand(cid=cid, action=action))  # type: ignore[arg-type]

    async def start(self, user_id: str, call_type: str, call_id: str) -> m.RecordingsResponse:
        """Start recording (``update-call``); 409 when already recording or nobody is in the media."""
        c = self._c
        call = await c.authorized_call(user_id, call_type, call_id, Capability.UPDATE_CALL)
        report = await self._command(call.cid, "start")
        info = report.recordings[0]
        await c.broadcast(
            call,
            m.CallRecordingStartedEvent(
                created_at=utcnow(),
                cid=call.cid,
                call=await c.call_response(call),
                recording_id=info.recording_id,
            ),
        )
        return m.RecordingsResponse(recordings=[_recording(info)])

    async def stop(self, user_id: str, call_type: str, call_id: str) -> m.RecordingsResponse:
        """Stop recording (``update-call``): the files and their durations; 409 when not recording."""
        c = self._c
        call = await c.authorized_call(user_id, call_type, call_id, Capability.UPDATE_CALL, active=False)
        report = await self._command(call.cid, "stop")
        recording = _recording(report.recordings[0])
        await c.broadcast(
            call,
            m.CallRecordingStoppedEvent(
                created_at=utcnow(), cid=call.cid, call=await c.call_response(call), recording=recording
            ),
        )
        return m.RecordingsResponse(recordings=[recording])

    async def list(self, user_id: str, call_type: str, call_id: str) -> m.RecordingsResponse:
        c = self._c
        call = await c.authorized_call(user_id, call_type, call_id, Capability.READ_CALL, active=False)
        report = await self._command(call.cid, "list")
        return m.RecordingsResponse(recordings=[_recording(info) for info in report.recordings])
