"""``python -m tests.unplug_scenario DIR``: unplug a call's microphone and speaker mid-call (a null sink's
module unloaded) in a fresh process; prints one JSON line with what the client observed.

Used by ``tests/integration/test_devices.py`` (see there why it is a separate process).
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import traceback
from pathlib import Path

from switchboard import CallConnectOptions, ClientOptions, TrackOption, User, VideoClient
from switchboard.media import DeviceMicrophone, DeviceSpeaker, ToneMicrophone
from switchboard.media.analysis import tone_level_dbfs
from switchboard.protocol.coordinator import Event
from switchboard.server import EmbeddedServer
from tests.pulse import Pulse

HZ = 440.0
MIC_ON = CallConnectOptions(microphone=TrackOption.enabled(), camera=TrackOption.disabled())


async def scenario(pulse: Pulse) -> dict[str, object]:
    module = pulse.null_sink("headset")
    pulse.pactl("set-default-sink", "headset")
    pulse.pactl("set-default-source", "headset.monitor")
    async with EmbeddedServer() as server:

        def client(user: str, **options: object) -> VideoClient:
            return VideoClient(
                server.api_key,
                user=User.regular(user),
                user_token=server.create_token(user),
                options=ClientOptions(base_url=server.url, **options),  # type: ignore[arg-type]
            )

        other = client("other", microphone=ToneMicrophone(HZ))
        user = client("user", microphone=DeviceMicrophone("pulse"), speaker=DeviceSpeaker("pulse"))
        errors: list[Event] = []
        both = asyncio.Event()

        def on_error(event: Event) -> None:
            errors.append(event)
            if len(errors) == 2:
                both.set()

        user.on("client.device_error", on_error)
        await other.connect()
        await user.connect()
        try:
            for c in (other, user):
                call = c.make_call("default", "unplug")
                await call.get_or_create()
                await call.join(MIC_ON)
            speaker = user.capture_speaker
            for _ in range(100):
                await asyncio.sleep(0.1)
                if tone_level_dbfs(speaker.samples(0.3), HZ) > -30.0:
                    break
            else:
                raise RuntimeError("the call never reached the device speaker")
            pulse.unload(module)
            await asyncio.wait_for(both.wait(), 15.0)
            await asyncio.sleep(1.0)
            call = user.state.active_calls.value[0]
            return {
                "directions": [e.data["direction"] for e in errors],  # type: ignore[attr-defined]
                "devices": [e.data["device"] for e in errors],  # type: ignore[attr-defined]
                "status_after": call.state.value.status.value,
                "tone_after_dbfs": round(tone_level_dbfs(speaker.samples(0.5), HZ), 1),
            }
        finally:
            await user.disconnect()
            await other.disconnect()


def main() -> None:
    pulse = Pulse(Path(sys.argv[1]) / "pulse")
    os.environ.update(pulse.env)
    pulse.start()
    try:
        print(json.dumps(asyncio.run(scenario(pulse))), flush=True)
    except Exception:
        print(traceback.format_exc(), flush=True)
        raise SystemExit(1) from None
    finally:
        pulse.stop()


if __name__ == "__main__":
    main()
