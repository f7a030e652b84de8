"""libopus decoding with packet-loss concealment and in-band FEC recovery.

PyAV's ``libopus`` decoder (FFmpeg's ``libopusdec``) decodes packets but exposes neither
packet-loss concealment (PLC: ``opus_decode`` with no packet) nor forward error correction
(``opus_decode`` with ``decode_fec=1``, RFC 6716 section 2.1.7: a packet may carry a low-bitrate
copy of the *previous* frame, the "LBRR" data). This module calls libopus itself through
``ctypes``: the copy bundled with PyAV (``av.libs/libopus-*.so*``), else the system's
``libopus.so.0``. It is the only place in switchboard that loads libopus directly.

Audio is 48 kHz int16, returned planar as ``(channels, samples)``; a 20 ms frame is 960 samples.
"""

from __future__ import annotations

import ctypes
import ctypes.util
from pathlib import Path
from typing import Final

import av
import numpy as np
import numpy.typing as npt

__all__ = [
    "DTX_MAX_BYTES",
    "OPUS_MAX_FRAME_SAMPLES",
    "OpusDecoder",
    "OpusEncoder",
    "OpusError",
    "libopus_path",
    "packet_has_fec",
    "packet_samples",
]

SAMPLE_RATE: Final = 48_000
#: The longest Opus packet is 120 ms (RFC 6716 section 3.2.5).
OPUS_MAX_FRAME_SAMPLES: Final = 5760
_OPUS_RESET_STATE: Final = 4028
# opus_defines.h
_APPLICATIONS: Final = {"voip": 2048, "audio": 2049, "lowdelay": 2051}
_SET_BITRATE: Final = 4002
_SET_INBAND_FEC: Final = 4012
_SET_PACKET_LOSS_PERC: Final = 4014
_SET_DTX: Final = 4016
#: OPUS_SET_INBAND_FEC(2), libopus >= 1.5: FEC whenever libopus codes SILK/hybrid anyway, without
#: forcing SILK on content it would code with CELT (FEC(1) does force it, and SILK conceals a
#: steady tone far worse than CELT does).
_FEC_WITHOUT_MODE_SWITCH: Final = 2
#: a packet this short is a DTX frame: nothing to send (RFC 6716 section 2.1.9)
DTX_MAX_BYTES: Final = 2
_MAX_PACKET: Final = 1500


class OpusError(RuntimeError):
    """libopus reported an error (or could not be loaded)."""


def _candidates() -> list[Path]:
    libs = Path(av.__file__).resolve().parent.parent / "av.libs"
    found = sorted(libs.glob("libopus*.so*")) if libs.is_dir() else []
    system = ctypes.util.find_library("opus")
    return [*found, *([Path(system)] if system else [])]


def _load() -> tuple[ctypes.CDLL, str]:
    errors: list[str] = []
    for path in _candidates():
        try:
            lib = ctypes.CDLL(str(path))
        except OSError as exc:
            errors.append(f"{path}: {exc}")
            continue
        _declare(lib)
        return lib, str(path)
    raise OpusError(
        "libopus not found: neither PyAV's bundled copy (av.libs) nor a system libopus.so.0 "
        "(Debian: apt-get install libopus0) could be loaded" + (f" ({'; '.join(errors)})" if errors else "")
    )


def _declare(lib: ctypes.CDLL) -> None:
    lib.opus_decoder_create.argtypes = [ctypes.c_int32, ctypes.c_int, ctypes.POINTER(ctypes.c_int)]
    lib.opus_decoder_create.restype = ctypes.c_void_p
    lib.opus_decoder_destroy.argtypes = [ctypes.c_void_p]
    lib.opus_decoder_destroy.restype = None
    lib.opus_decode.argtypes = [
        ctypes.c_void_p,
        ctypes.c_char_p,
        ctypes.c_int32,
        ctypes.POINTER(ctypes.c_int16),
        ctypes.c_int,
        ctypes.c_int,
    ]
    lib.opus_decode.restype = ctypes.c_int
    lib.opus_decoder_ctl.argtypes = [ctypes.c_void_p, ctypes.c_int]
    lib.opus_decoder_ctl.restype = ctypes.c_int
    lib.opus_packet_get_nb_samples.argtypes = [ctypes.c_char_p, ctypes.c_int32, ctypes.c_int32]
    lib.opus_packet_get_nb_samples.restype = ctypes.c_int
    lib.opus_strerror.argtypes = [ctypes.c_int]
    lib.opus_strerror.restype = ctypes.c_char_p
    lib.opus_encoder_create.argtypes = [
        ctypes.c_int32,
        ctypes.c_int,
        ctypes.c_int,
        ctypes.POINTER(ctypes.c_int),
    ]
    lib.opus_encoder_create.restype = ctypes.c_void_p
    lib.opus_encoder_destroy.argtypes = [ctypes.c_void_p]
    lib.opus_encoder_destroy.restype = None
    lib.opus_encode.argtypes = [
        ctypes.c_void_p,
        ctypes.POINTER(ctypes.c_int16),
        ctypes.c_int,
        ctypes.c_char_p,
        ctypes.c_int32,
    ]
    lib.opus_encode.restype = ctypes.c_int32
    # opus_encoder_ctl is variadic; every request used here takes one opus_int32.
    lib.opus_encoder_ctl.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_int32]
    lib.opus_encoder_ctl.restype = ctypes.c_int


_lib: ctypes.CDLL | None = None
_lib_path = ""


def _opus() -> ctypes.CDLL:
    global _lib, _lib_path
    if _lib is None:
        _lib, _lib_path = _load()
    return _lib


def libopus_path() -> str:
    """Path of the libopus shared library in use (loads it on first call; raises :class:`OpusError`)."""
    _opus()
    return _lib_path


def _error(code: int) -> OpusError:
    message = _opus().opus_strerror(code)
    return OpusError(f"libopus error {code}: {message.decode() if message else 'unknown'}")


def packet_samples(packet: bytes) -> int:
    """Samples per channel (at 48 kHz) in an Opus packet, from its TOC (RFC 6716 section 3.1).

    Raises :class:`OpusError` for an empty or malformed packet.
    """
    if not packet:
        raise OpusError("empty Opus packet")
    n = int(_opus().opus_packet_get_nb_samples(packet, len(packet), SAMPLE_RATE))
    if n <= 0:
        raise _error(n)
    return n


def packet_has_fec(packet: bytes) -> bool:
    """Whether the packet carries in-band FEC (LBRR) data for the frame before it.

    Uses ``opus_packet_has_lbrr`` (libopus >= 1.5); on older libopus every SILK/hybrid packet is
    reported as possibly carrying FEC. Raises :class:`OpusError` for a malformed packet.
    """
    if not packet:
        raise OpusError("empty Opus packet")
    lib = _opus()
    has_lbrr = getattr(lib, "opus_packet_has_lbrr", None)
    if has_lbrr is None:  # pragma: no cover - the bundled libopus is 1.5
        return (packet[0] >> 3) < 16  # SILK-only or hybrid configs (RFC 6716 table 2)
    has_lbrr.argtypes = [ctypes.c_char_p, ctypes.c_int32]
    has_lbrr.restype = ctypes.c_int
    result = int(has_lbrr(packet, len(packet)))
    if result < 0:
        raise _error(result)
    return result == 1


class OpusEncoder:
    """One libopus encoder: 48 kHz int16 PCM ``(channels, 960)`` (or ``(960,)`` mono) -> one packet.

    ``application`` ``voip`` / ``audio`` / ``lowdelay``; ``bitrate`` in b/s; ``fec`` turns on in-band
    FEC (RFC 6716 section 2.1.7) sized for ``expected_loss_percent`` (change it live with
    :meth:`set_expected_loss`); ``dtx`` turns on discontinuous transmission: during silence libopus
    returns packets of at most :data:`DTX_MAX_BYTES` bytes, which the caller does not send.
    Raises :class:`OpusError` when libopus refuses a setting or fails to encode.
    """

    def __init__(
        self,
        channels: int = 1,
        bitrate: int = 32_000,
        application: str = "voip",
        *,
        fec: bool = False,
        expected_loss_percent: int = 0,
        dtx: bool = False,
    ) -> None:
        if channels not in (1, 2):
            raise ValueError(f"channels must be 1 or 2, got {channels!r}")
        if application not in _APPLICATIONS:
            raise ValueError(f"application must be one of {sorted(_APPLICATIONS)}, got {application!r}")
        lib = _opus()
        err = ctypes.c_int(0)
        handle = lib.opus_encoder_create(SAMPLE_RATE, channels, _APPLICATIONS[application], ctypes.byref(err))
        if err.value != 0 or not handle:
            raise _error(err.value)
        self._lib = lib
        self._handle: int | None = handle
        self.channels = channels
        self._out = ctypes.create_string_buffer(_MAX_PACKET)
        self._ctl(_SET_BITRATE, bitrate)
        self._ctl(_SET_INBAND_FEC, _FEC_WITHOUT_MODE_SWITCH if fec else 0)
        self.set_expected_loss(expected_loss_percent)
        self._ctl(_SET_DTX, int(dtx))
        self.dtx = dtx

    def _ctl(self, request: int, value: int) -> None:
        if self._handle is None:
            raise OpusError("encoder is closed")
        code = self._lib.opus_encoder_ctl(self._handle, request, value)
        if code != 0:
            raise _error(code)

    def set_expected_loss(self, percent: int) -> None:
        """How much FEC to spend: the packet loss (0..100 %) the far end is expected to see."""
        if not 0 <= percent <= 100:
            raise ValueError(f"expected loss must be within 0..100 %, got {percent}")
        self._ctl(_SET_PACKET_LOSS_PERC, int(percent))
        self.expected_loss_percent = int(percent)

    def encode(self, pcm: npt.NDArray[np.int16]) -> bytes:
        """One packet for 20 ms of PCM (``(channels, 960)`` planar, or ``(960,)`` for mono)."""
        if self._handle is None:
            raise OpusError("encoder is closed")
        if pcm.dtype != np.int16:
            raise ValueError(f"PCM must be int16, got {pcm.dtype}")
        if pcm.ndim == 1 and self.channels == 1:
            pcm = pcm.reshape(1, -1)
        if pcm.shape != (self.channels, 960):
            raise ValueError(f"PCM must have shape ({self.channels}, 960), got {pcm.shape}")
        interleaved = np.ascontiguousarray(pcm.T)
        n = self._lib.opus_encode(
            self._handle,
            interleaved.ctypes.data_as(ctypes.POINTER(ctypes.c_int16)),
            960,
            self._out,
            _MAX_PACKET,
        )
        if n < 0:
            raise _error(n)
        return self._out.raw[:n]

    def close(self) -> None:
        handle, self._handle = getattr(self, "_handle", None), None
        if handle is not None:
            self._lib.opus_encoder_destroy(handle)

    def __del__(self) -> None:
        self.close()


class OpusDecoder:
    """One libopus decoder (48 kHz, ``channels`` 1 or 2 output; any Opus stream decodes to either).

    * :meth:`decode` -- a received packet.
    * :meth:`conceal` -- packet-loss concealment for ``samples`` of audio nobody received (libopus
      extrapolates from its state; repeated calls fade towards silence).
    * :meth:`recover` -- the frame *before* ``packet`` rebuilt from ``packet``'s in-band FEC data
      (RFC 6716 section 2.1.7); if ``packet`` carries none, libopus conceals instead.

    Every method returns int16 PCM of shape ``(channels, samples)``. Not thread-safe: one decoder
    belongs to one stream and one thread. Raises :class:`OpusError` when libopus fails (e.g. a
    corrupt packet); the decoder stays usable.
    """

    def __init__(self, channels: int = 2) -> None:
        if channels not in (1, 2):
            raise ValueError(f"channels must be 1 or 2, got {channels!r}")
        lib = _opus()
        err = ctypes.c_int(0)
        handle = lib.opus_decoder_create(SAMPLE_RATE, channels, ctypes.byref(err))
        if err.value != 0 or not handle:
            raise _error(err.value)
        self._lib = lib
        self._handle: int | None = handle
        self.channels = channels
        self._pcm = (ctypes.c_int16 * (OPUS_MAX_FRAME_SAMPLES * channels))()

    def _run(self, packet: bytes | None, samples: int, fec: bool) -> npt.NDArray[np.int16]:
        if self._handle is None:
            raise OpusError("decoder is closed")
        if not 0 < samples <= OPUS_MAX_FRAME_SAMPLES or samples % 120:
            raise ValueError(f"samples must be a multiple of 120 (2.5 ms) up to {OPUS_MAX_FRAME_SAMPLES}")
        n = self._lib.opus_decode(
            self._handle, packet, len(packet) if packet else 0, self._pcm, samples, int(fec)
        )
        if n < 0:
            raise _error(n)
        out = np.frombuffer(memoryview(self._pcm), dtype=np.int16, count=int(n) * self.channels)
        return out.reshape(n, self.channels).T.copy()  # a copy: the ctypes buffer is reused

    def decode(self, packet: bytes) -> npt.NDArray[np.int16]:
        """Decode one packet (all of its frames)."""
        if not packet:
            raise OpusError("empty Opus packet")
        return self._run(packet, OPUS_MAX_FRAME_SAMPLES, fec=False)

    def conceal(self, samples: int = 960) -> npt.NDArray[np.int16]:
        """Packet-loss concealment for ``samples`` lost samples per channel (a multiple of 120)."""
        return self._run(None, samples, fec=False)

    def recover(self, packet: bytes, samples: int = 960) -> npt.NDArray[np.int16]:
        """The ``samples`` lost just before ``packet``, from its in-band FEC (concealed if it has none).

        ``packet`` itself is not consumed: decode it with :meth:`decode` afterwards.
        """
        if not packet:
            raise OpusError("empty Opus packet")
        return self._run(packet, samples, fec=True)

    def reset(self) -> None:
        """Forget all decoder state (a new stream, or audio after a long pause)."""
        if self._handle is not None:
            self._lib.opus_decoder_ctl(self._handle, _OPUS_RESET_STATE)

    def close(self) -> None:
        handle, self._handle = getattr(self, "_handle", None), None
        if handle is not None:
            self._lib.opus_decoder_destroy(handle)

    def __del__(self) -> None:
        self.close()
