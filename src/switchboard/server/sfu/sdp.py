"""SDP text edits the SFU makes so browsers negotiate only what it can forward.

aiortc negotiates every codec it can *decode* (Opus, PCMU, PCMA, VP8, H.264), but the SFU never
decodes: it forwards encoded frames to subscribers whose transceivers speak Opus and VP8 only. So:

* :func:`restrict_codecs` removes every other codec from a publisher's offer before aiortc sees it,
  steering a browser that prefers H.264 or PCMU to VP8 / Opus (RFC 3264 section 6: the answer may
  only contain formats of the offer, and the offerer must then send one of them);
* :func:`opus_fmtp` is the one place that writes Opus format parameters (RFC 7587 section 6.1:
  ``stereo``, ``sprop-stereo``, ``useinbandfec``);
* :func:`set_stream_ids` gives every forwarded track the ``a=msid`` of its publisher's session
  (RFC 8830), so a browser groups a participant's tracks in one ``MediaStream`` and fires ``track``
  again when a transceiver is reused for someone else.

All functions take and return SDP text (CRLF lines) and leave lines they do not concern untouched.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

#: codecs the SFU forwards, by media kind (lower-case ``encoding name``); RTX only for these
FORWARDED: dict[str, frozenset[str]] = {"audio": frozenset({"opus"}), "video": frozenset({"vp8"})}

_RTPMAP = re.compile(r"^a=rtpmap:(\d+) ([^/\s]+)/", re.IGNORECASE)
_FMTP = re.compile(r"^a=fmtp:(\d+) ?(.*)$")
_PT_LINE = re.compile(r"^a=(?:rtpmap|fmtp|rtcp-fb):(\d+)[ \r]")
_MID = re.compile(r"^a=mid:(\S+)")


class NoForwardableCodec(ValueError):
    """A media section of an offer has no codec the SFU can forward."""


def _split(sdp: str) -> tuple[list[str], list[list[str]]]:
    """(session lines, media sections), each a list of lines without line endings."""
    lines = [line for line in sdp.replace("\r\n", "\n").split("\n") if line]
    session: list[str] = []
    sections: list[list[str]] = []
    for line in lines:
        if line.startswith("m="):
            sections.append([line])
        elif sections:
            sections[-1].append(line)
        else:
            session.append(line)
    return session, sections


def _join(session: list[str], sections: list[list[str]]) -> str:
    return "\r\n".join([*session, *(line for section in sections for line in section)]) + "\r\n"


def _kind(section: list[str]) -> str:
    return section[0][2:].split(" ", 1)[0]


def _codecs(section: list[str]) -> dict[int, str]:
    """payload type -> lower-case encoding name."""
    found: dict[int, str] = {}
    for line in section:
        match = _RTPMAP.match(line)
        if match:
            found[int(match.group(1))] = match.group(2).lower()
    return found


def _fmtp(section: list[str]) -> dict[int, str]:
    found: dict[int, str] = {}
    for line in section:
        match = _FMTP.match(line)
        if match:
            found[int(match.group(1))] = match.group(2)
    return found


def _params(text: str) -> dict[str, str]:
    pairs = (item.strip().partition("=") for item in text.split(";") if item.strip())
    return {key.strip(): value.strip() for key, _, value in pairs}


def restrict_codecs(offer_sdp: str) -> str:
    """``offer_sdp`` with only Opus (audio) and VP8 plus its RTX (video) left in each media section.

    Sections that are already rejected (port 0) and non-RTP sections are left as they are.

    Raises:
        NoForwardableCodec: an active audio/video section offers none of the forwarded codecs.
    """
    session, sections = _split(offer_sdp)
    for index, section in enumerate(sections):
        kind = _kind(section)
        head = section[0].split(" ")
        if kind not in FORWARDED or len(head) < 4 or head[1] == "0":
            continue
        codecs = _codecs(section)
        fmtp = _fmtp(section)
        keep = {pt for pt, name in codecs.items() if name in FORWARDED[kind]}
        keep |= {pt for pt, name in codecs.items() if name == "rtx" and _rtx_apt(fmtp.get(pt, "")) in keep}
        if not keep:
            offered = ", ".join(sorted(set(codecs.values()))) or "none"
            wanted = " / ".join(sorted(FORWARDED[kind]))
            raise NoForwardableCodec(f"{kind} section {index} offers {offered}; the SFU forwards {wanted}")
        formats = [f for f in head[3:] if f.isdigit() and int(f) in keep]
        kept = [" ".join(head[:3] + formats)]
        for line in section[1:]:
            match = _PT_LINE.match(line + " ")
            if match is None or int(match.group(1)) in keep:
                kept.append(line)
        sections[index] = kept
    return _join(session, sections)


def _rtx_apt(fmtp: str) -> int | None:
    apt = _params(fmtp).get("apt", "")
    return int(apt) if apt.isdigit() else None


def wants_stereo(sdp: str) -> bool:
    """Whether any Opus format in ``sdp`` says ``stereo=1`` or ``sprop-stereo=1`` (RFC 7587)."""
    _, sections = _split(sdp)
    for section in sections:
        fmtp = _fmtp(section)
        for pt, name in _codecs(section).items():
            params = _params(fmtp.get(pt, "")) if name == "opus" else {}
            if params.get("stereo") == "1" or params.get("sprop-stereo") == "1":
                return True
    return False


def opus_fmtp(sdp: str, *, stereo: bool, fec: bool = True) -> str:
    """Set the Opus format parameters the SFU asks for in every audio section of ``sdp``.

    ``stereo``: ``stereo=1;sprop-stereo=1`` (the SFU receives and forwards two channels as the
    publisher encodes them; RFC 7587 section 6.1), otherwise both are removed (mono, the default).
    ``fec``: ``useinbandfec=1`` (the receiver decodes Opus in-band FEC; RFC 7587 section 6.1).
    """
    session, sections = _split(sdp)
    for index, section in enumerate(sections):
        if _kind(section) != "audio":
            continue
        fmtp = _fmtp(section)
        for pt, name in _codecs(section).items():
            if name != "opus":
                continue
            params = _params(fmtp.get(pt, ""))
            for key in ("stereo", "sprop-stereo"):
                params.pop(key, None)
                if stereo:
                    params[key] = "1"
            params.pop("useinbandfec", None)
            if fec:
                params["useinbandfec"] = "1"
            line = f"a=fmtp:{pt} " + ";".join(f"{k}={v}" if v else k for k, v in params.items())
            section = _replace_fmtp(section, pt, line)
        sections[index] = section
    return _join(session, sections)


def _replace_fmtp(section: list[str], pt: int, line: str) -> list[str]:
    out = [existing for existing in section if not existing.startswith(f"a=fmtp:{pt} ")]
    rtpmap = next(i for i, existing in enumerate(out) if existing.startswith(f"a=rtpmap:{pt} "))
    out.insert(rtpmap + 1, line)
    return out


def set_stream_ids(sdp: str, streams: Mapping[str, tuple[str, str]]) -> str:
    """Rewrite ``a=msid`` of the media sections whose ``mid`` is in ``streams``.

    ``streams`` maps a mid to ``(stream id, track id)``; the SFU uses the publisher's session id as
    the stream id and ``<session id>:<kind>`` as the track id (``docs/protocol.md``). Sections not in
    ``streams`` (idle transceivers) keep what aiortc wrote.
    """
    session, sections = _split(sdp)
    for index, section in enumerate(sections):
        mid = next((m.group(1) for line in section if (m := _MID.match(line))), None)
        if mid is None or mid not in streams:
            continue
        stream_id, track_id = streams[mid]
        msid = f"a=msid:{stream_id} {track_id}"
        lines = [line for line in section if not line.startswith("a=msid:")]
        at = next((i for i, line in enumerate(lines) if line.startswith("a=mid:")), 0) + 1
        lines.insert(at, msid)
        sections[index] = [
            re.sub(r"^(a=ssrc:\d+ msid:).*$", rf"\g<1>{stream_id} {track_id}", line) for line in lines
        ]
    return _join(session, sections)
