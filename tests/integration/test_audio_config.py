"""Per-call audio configuration (SPEC §2.5): every knob of the policy has an effect seen on the wire.

The SFU sees what each call sends: the Opus TOC byte (stereo flag, SILK/hybrid vs CELT mode) and the
bitrate. Voice processing (WebRTC's APM) runs only for a real (non-virtual) microphone and only when
the policy asks for it; its effect is heard at the far end.
"""

from __future__ import annotations

import asyncio

import numpy as np
import numpy.typing as npt

from switchboard import (
    AudioConfigurationPolicy,
    CallConnectOptions,
    CallPreferences,
    ClientOptions,
    MultiCallAudioPolicy,
    TrackOption,
    User,
    VideoClient,
)
from switchboard.media import CaptureSpeaker, Microphone, ToneMicrophone
from switchboard.media.analysis import tone_level_dbfs
from switchboard.media.rtp_hooks import opus_toc
from switchboard.server import EmbeddedServer
from tests.conftest import ClientFactory

MIC_ON = CallConnectOptions(microphone=TrackOption.enabled(), camera=TrackOption.disabled())


class NoisyToneMicrophone(Microphone):
    """A 440 Hz tone in white noise; ``is_virtual=False`` stands in for a physical microphone."""

    def __init__(self, *, physical: bool) -> None:
        super().__init__("noisy-tone", 1)
        self.is_virtual = not physical
        self._tone = ToneMicrophone(440)
        self._rng = np.random.default_rng(7)

    def read_frame(self) -> npt.NDArray[np.float32]:
        noise = self._rng.normal(0.0, 0.03, (1, 960))
        return (self._tone.read_frame() + noise).astype(np.float32)


async def sent(
    server: EmbeddedServer, client: VideoClient, cid: str, seconds: float = 1.5
) -> tuple[float, bool, str]:
    """(kb/s, stereo, Opus mode) of the audio this client's call sends, as seen at the SFU."""
    call_type, _, call_id = cid.partition(":")
    call = client.make_call(call_type, call_id)
    session = call.state.value.session_id or ""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 10
    while loop.time() < deadline:
        track = server.sfu.rooms[cid].participants[session].published.get("audio")
        if track is not None and track.frames_in > 25:
            break
        await asyncio.sleep(0.05)
    assert track is not None and track.last_head is not None
    start = track.bytes_in
    await asyncio.sleep(seconds)
    toc = opus_toc(bytes([track.last_head]))
    return (track.bytes_in - start) * 8 / seconds / 1000, toc.stereo, toc.mode


async def join_with(
    server: EmbeddedServer, make_client: ClientFactory, user: str, room: str, **options: object
):
    client = await make_client(user, **options)
    call = client.make_call("default", room)
    await call.get_or_create()
    await call.join(MIC_ON)
    return client, call


async def test_policy_resolution_per_call_then_client_then_broadcaster(make_client: ClientFactory) -> None:
    client = await make_client(
        "me",
        allow_multiple_active_calls=True,
        multi_call_audio_policy=MultiCallAudioPolicy.MANUAL,
        audio_configuration_policy=AudioConfigurationPolicy.hi_fi(),
    )
    live = client.make_call(
        "default",
        "live",
        preferences=CallPreferences(audio_configuration_policy=AudioConfigurationPolicy.viewer()),
    )
    one = client.make_call("default", "one-on-one")
    for call in (live, one):
        await call.get_or_create()
        await call.join(MIC_ON)
    assert live.audio_device_module is not None and one.audio_device_module is not None
    assert live.audio_device_module.policy == AudioConfigurationPolicy.viewer()
    assert one.audio_device_module.policy == AudioConfigurationPolicy.hi_fi()
    plain = await make_client("plain")
    call = plain.make_call("default", "plain")
    await call.get_or_create()
    await call.join(MIC_ON)
    assert call.audio_device_module is not None
    assert call.audio_device_module.policy == AudioConfigurationPolicy.broadcaster()


async def test_channels_and_bitrate_reach_the_wire(
    server: EmbeddedServer, make_client: ClientFactory
) -> None:
    results = {}
    for name, policy in [
        ("broadcaster", AudioConfigurationPolicy.broadcaster()),
        ("viewer", AudioConfigurationPolicy.viewer()),
        ("hi_fi", AudioConfigurationPolicy.hi_fi()),
    ]:
        client, call = await join_with(
            server, make_client, name, name, microphone=ToneMicrophone(440), audio_configuration_policy=policy
        )
        results[name] = await sent(server, client, call.cid)
        adm = call.audio_device_module
        assert adm is not None
        assert adm.capture_channels == policy.capture_channels
        assert adm.opus_settings.bitrate == policy.opus_bitrate
    (b_rate, b_stereo, _), (v_rate, v_stereo, _), (h_rate, h_stereo, _) = (
        results["broadcaster"],
        results["viewer"],
        results["hi_fi"],
    )
    assert (b_stereo, v_stereo, h_stereo) == (False, False, True)
    assert b_rate < v_rate < h_rate, results
    assert 16 < b_rate < 64 and 40 < v_rate < 110 and 80 < h_rate < 200, results


async def test_speech_or_music_tuning_is_the_opus_application(
    server: EmbeddedServer, make_client: ClientFactory
) -> None:
    """``voip`` (speech) runs libopus's high-pass filter, ``audio`` (music) keeps the lows: a 30 Hz
    tone reaches the far end about 12 dB weaker under voip."""
    levels = {}
    for application in ("voip", "audio"):
        policy = AudioConfigurationPolicy.custom(opus_application=application, voice_processing=False)
        await join_with(
            server, make_client, application, f"tuning-{application}",
            microphone=ToneMicrophone(30), audio_configuration_policy=policy,
        )  # fmt: skip
        far = await make_client(f"far-{application}", speaker=CaptureSpeaker())
        await far.make_call("default", f"tuning-{application}").join(MIC_ON)
        await asyncio.sleep(1.5)
        levels[application] = tone_level_dbfs(far.capture_speaker.samples(1.0), 30)
    assert levels["audio"] > -20, levels
    assert levels["voip"] < levels["audio"] - 6, levels


async def far_end_levels(
    server: EmbeddedServer, make_client: ClientFactory, user: str, policy, physical: bool
):
    _, call = await join_with(
        server,
        make_client,
        user,
        f"vp-{user}",
        microphone=NoisyToneMicrophone(physical=physical),
        audio_configuration_policy=policy,
    )
    far = await make_client(f"far-{user}", speaker=CaptureSpeaker())
    await far.make_call("default", f"vp-{user}").join(MIC_ON)
    await asyncio.sleep(3.0)  # the noise suppressor adapts over the first second or two
    samples = far.capture_speaker.samples(1.0)
    spectrum = np.abs(np.fft.rfft(samples * np.hanning(len(samples)))) ** 2
    freqs = np.fft.rfftfreq(len(samples), 1 / 48000)
    noise_db = 10 * np.log10(np.mean(spectrum[(freqs > 2000) & (freqs < 8000)]) + 1e-20)
    return call, noise_db, tone_level_dbfs(samples, 440)


async def test_voice_processing_runs_only_for_physical_mics_when_asked(
    server: EmbeddedServer, make_client: ClientFactory
) -> None:
    on = AudioConfigurationPolicy.broadcaster()
    off = AudioConfigurationPolicy.custom(voice_processing=False)
    processed, noise_on, _ = await far_end_levels(server, make_client, "on", on, physical=True)
    raw, noise_off, _ = await far_end_levels(server, make_client, "off", off, physical=True)
    virtual, noise_virtual, tone_virtual = await far_end_levels(
        server, make_client, "virt", on, physical=False
    )
    assert processed.audio_device_module is not None and processed.audio_device_module.voice_processing_active
    assert processed.audio_device_module.voice_processor is not None
    assert processed.audio_device_module.voice_processor.frames_processed > 50
    assert raw.audio_device_module is not None and raw.audio_device_module.voice_processor is None
    assert virtual.audio_device_module is not None and virtual.audio_device_module.voice_processor is None
    assert noise_on < noise_off - 6, (noise_on, noise_off)  # noise suppression audibly at work
    assert abs(noise_virtual - noise_off) < 3  # a virtual mic is never processed, policy or not
    assert tone_virtual > -20


async def test_client_without_connect_has_a_default_policy() -> None:
    client = VideoClient("k", user=User.regular("x"), user_token="t", options=ClientOptions())
    assert (
        client.make_call("default", "x").audio_configuration_policy == AudioConfigurationPolicy.broadcaster()
    )


class StereoToneMicrophone(Microphone):
    """440 Hz on the left, 660 Hz on the right."""

    def __init__(self) -> None:
        super().__init__("stereo-tones", 2)
        self._left, self._right = ToneMicrophone(440), ToneMicrophone(660)

    def read_frame(self) -> npt.NDArray[np.float32]:
        return np.vstack([self._left.read_frame(), self._right.read_frame()])


async def test_playout_channels_keep_or_fold_stereo(
    server: EmbeddedServer, make_client: ClientFactory
) -> None:
    await join_with(
        server, make_client, "stereo-source", "stereo",
        microphone=StereoToneMicrophone(), audio_configuration_policy=AudioConfigurationPolicy.hi_fi(),
    )  # fmt: skip
    heard = {}
    for name, policy in [
        ("viewer", AudioConfigurationPolicy.viewer()),
        ("mono", AudioConfigurationPolicy.broadcaster()),
    ]:
        listener = await make_client(
            f"listener-{name}", speaker=CaptureSpeaker(channels=2), audio_configuration_policy=policy
        )
        call = listener.make_call("default", "stereo")
        await call.join(CallConnectOptions(microphone=TrackOption.disabled(), camera=TrackOption.disabled()))
        assert call.audio_device_module is not None
        assert call.audio_device_module.playout_channels == policy.playout_channels
        await asyncio.sleep(1.5)
        left, right = listener.capture_speaker.samples_channels(1.0)
        heard[name] = [round(tone_level_dbfs(ch, hz)) for ch in (left, right) for hz in (440, 660)]
    # stereo playout keeps the channels apart: L = 440 only, R = 660 only
    l440, l660, r440, r660 = heard["viewer"]
    assert l440 > -25 and r660 > -25 and l660 < -50 and r440 < -50, heard
    # mono playout folds them: both tones on both channels
    assert all(level > -30 for level in heard["mono"]), heard
