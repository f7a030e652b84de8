"""Recording a call's audio on the Janus engine: the same files as the embedded engine.

The node's :class:`~switchboard.server.sfu_janus.levels.LevelListener` already receives every
publisher's audio once (tapped, never decoded); while a recording runs, each packet also goes to
that session's :class:`~switchboard.server.sfu.recording.TrackWriter`: the Opus packets as the
publisher encoded them, in one Ogg file per session (RFC 7845), created at its first packet, so
sessions that publish later are recorded too; audio a moderator muted is not recorded. At stop the
files are closed and mixed into ``mixed.ogg`` exactly as on the embedded engine
(``server/sfu/recording.py``: same directory layout, file names and report).

Janus's own recorder (``.mjr`` files, converted with ``janus-pp-rec``) is not used: it would need a
conversion and a mix step after the fact, and Debian ships ``janus-pp-rec`` in a separate package.
"""

from __future__ import annotations

import time
import uuid
from pathlib import Path

from switchboard.media.rtp_hooks import EncodedFrame
from switchboard.protocol import sfu as p
from switchboard.server.sfu.recording import TrackWriter, finish
from switchboard.server.sfu_janus.room import JanusParticipant, JanusRoom


class JanusRecorder:
    """One running recording of one Janus call (a :class:`~switchboard.server.sfu.recording.Recorder`)."""

    def __init__(self, room: JanusRoom, directory: Path) -> None:
        self.room = room
        self.info = p.RecordingInfo(recording_id=uuid.uuid4().hex[:12], cid=room.cid, started_at=time.time())
        self.directory = directory / room.cid.replace(":", "_") / self.info.recording_id
        self.directory.mkdir(parents=True, exist_ok=True)
        self._started = time.monotonic()
        self.writers: list[TrackWriter] = []
        #: the writer of each recorded session (a session that publishes again keeps its file)
        self._by_session: dict[str, TrackWriter] = {}

    def start(self) -> None:
        self.room.levels.recorder = self

    def write(self, participant: JanusParticipant, frame: EncodedFrame) -> None:
        """One packet of ``participant``'s audio (from the level listener)."""
        if "audio" in participant.moderated:
            return
        writer = self._by_session.get(participant.session_id)
        if writer is None:
            name = f"{participant.user_id}-{participant.session_id[:8]}"
            writer = TrackWriter(participant, self.directory / f"{name}.ogg", self._started)
            self.writers.append(writer)
            self._by_session[participant.session_id] = writer
        writer.write(frame)

    async def stop(self) -> p.RecordingInfo:
        if self.room.levels.recorder is self:
            self.room.levels.recorder = None
        for writer in self.writers:
            writer.close()
        return await finish(self.info, self.writers, self.directory)
