"""Devices and media: the microphones and speakers a :class:`~switchboard.VideoClient` uses (SPEC §2.9).

``ClientOptions(microphone=..., speaker=...)`` takes any :class:`Microphone` / :class:`Speaker`:

* virtual: :class:`ToneMicrophone`, :class:`FileMicrophone`, :class:`SilentMicrophone`,
  :class:`CaptureSpeaker` (records what it plays);
* real, through PortAudio: :class:`DeviceMicrophone`, :class:`DeviceSpeaker`; :func:`list_audio_devices`
  lists the machine's :class:`AudioDevice` s.

Submodules: ``devices`` (PortAudio), ``audio_format`` (48 kHz / 20 ms frames),
``microphones``, ``speakers``, ``playout`` (what a speaker mixes from), ``jitter_buffer``
(remote Opus: loss concealment and FEC), ``opus`` (libopus through ctypes), ``tracks`` (aiortc
tracks), ``camera``, ``audio_session`` (the client's devices and each call's audio device module),
``audio_config``, ``voice_processing``, ``drift`` (clock-drift compensation in the device queues),
``loss_feedback`` (the encoder's expected loss from RTCP receiver reports), ``analysis`` (listening
to audio: tone levels by FFT) and ``rtp_hooks`` (every hook into aiortc internals).
"""

from switchboard.media.devices import AudioDevice, DeviceMicrophone, DeviceSpeaker, list_audio_devices
from switchboard.media.microphones import FileMicrophone, Microphone, SilentMicrophone, ToneMicrophone
from switchboard.media.speakers import CaptureSpeaker, Speaker

__all__ = [
    "AudioDevice",
    "CaptureSpeaker",
    "DeviceMicrophone",
    "DeviceSpeaker",
    "FileMicrophone",
    "Microphone",
    "SilentMicrophone",
    "Speaker",
    "ToneMicrophone",
    "list_audio_devices",
]
