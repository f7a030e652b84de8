"""``AudioConfigurationPolicy``: how a call's audio device module is built (SPEC §2.5).

Each knob has an effect you can observe: capture/playout channel counts, the Opus encoder's bitrate,
application (speech ``voip`` or music ``audio``) and stereo flag, and whether voice processing runs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from switchboard.errors import InvalidRequestError

OpusApplication = Literal["voip", "audio", "lowdelay"]


@dataclass(frozen=True)
class AudioConfigurationPolicy:
    name: str
    capture_channels: int
    playout_channels: int
    opus_bitrate: int
    opus_application: OpusApplication
    voice_processing: bool
    #: Opus in-band FEC in what this call sends (RFC 6716 section 2.1.7). libopus carries it only in
    #: SILK/hybrid modes and turning it on pulls music away from CELT, so the music presets keep it off.
    opus_fec: bool = True
    #: the loss rate (%) the encoder prepares its FEC for (libopus OPUS_SET_PACKET_LOSS_PERC)
    opus_expected_loss_percent: int = 10
    #: lost remote frames rebuilt from FEC or concealed by libopus PLC; off: every loss is a gap
    loss_concealment: bool = True
    #: discontinuous transmission: silence is not sent (speech presets only; music keeps every frame)
    opus_dtx: bool = False
    #: automatic gain control inside voice processing. Off in every preset: on a real echo path it
    #: lifts the echo canceller's residual back up (far end's voice returned 10 dB below the
    #: unprocessed echo with it, 28 dB without; docs/performance.md)
    auto_gain_control: bool = False

    def __post_init__(self) -> None:
        if self.capture_channels not in (1, 2) or self.playout_channels not in (1, 2):
            raise InvalidRequestError(
                f"channel counts must be 1 or 2, not {self.capture_channels} / {self.playout_channels}"
            )
        if not 6_000 <= self.opus_bitrate <= 510_000:
            raise InvalidRequestError(
                f"opus_bitrate must be within 6000..510000 b/s, not {self.opus_bitrate}"
            )
        if not 0 <= self.opus_expected_loss_percent <= 100:
            raise InvalidRequestError(
                f"opus_expected_loss_percent must be within 0..100, not {self.opus_expected_loss_percent}"
            )

    @property
    def opus_stereo(self) -> bool:
        return self.capture_channels == 2

    @classmethod
    def broadcaster(cls) -> AudioConfigurationPolicy:
        """Voice: mono capture and playout, voice processing on, speech-tuned Opus."""
        return cls("broadcaster", 1, 1, 32_000, "voip", True, opus_dtx=True)

    @classmethod
    def viewer(cls) -> AudioConfigurationPolicy:
        """Listening: stereo playout, no voice processing, music-tuned Opus at a higher bitrate."""
        return cls("viewer", 1, 2, 64_000, "audio", False, opus_fec=False)

    @classmethod
    def hi_fi(cls) -> AudioConfigurationPolicy:
        """Stereo capture and playout, no processing, music-tuned Opus."""
        return cls("hi_fi", 2, 2, 128_000, "audio", False, opus_fec=False)

    @classmethod
    def custom(
        cls,
        *,
        capture_channels: int = 1,
        playout_channels: int = 1,
        opus_bitrate: int = 32_000,
        opus_application: OpusApplication = "voip",
        voice_processing: bool = True,
        opus_fec: bool = True,
        opus_expected_loss_percent: int = 10,
        loss_concealment: bool = True,
        opus_dtx: bool = False,
        auto_gain_control: bool = False,
        name: str = "custom",
    ) -> AudioConfigurationPolicy:
        return cls(
            name,
            capture_channels,
            playout_channels,
            opus_bitrate,
            opus_application,
            voice_processing,
            opus_fec,
            opus_expected_loss_percent,
            loss_concealment,
            opus_dtx,
            auto_gain_control,
        )
