"""The SFU's SDP edits: codec restriction, Opus format parameters, per-publisher stream ids."""

from __future__ import annotations

import pytest
from aiortc.sdp import SessionDescription

from switchboard.server.sfu.sdp import (
    NoForwardableCodec,
    opus_fmtp,
    restrict_codecs,
    set_stream_ids,
    wants_stereo,
)

# the shape of a Chromium offer whose page prefers PCMU and H264 (setCodecPreferences)
OFFER = "\r\n".join(
    [
        "v=0",
        "o=- 1 2 IN IP4 127.0.0.1",
        "s=-",
        "t=0 0",
        "a=group:BUNDLE 0 1",
        "m=audio 9 UDP/TLS/RTP/SAVPF 0 111 8",
        "c=IN IP4 0.0.0.0",
        "a=mid:0",
        "a=sendonly",
        "a=msid:- a1",
        "a=rtpmap:0 PCMU/8000",
        "a=rtpmap:111 opus/48000/2",
        "a=rtcp-fb:111 transport-cc",
        "a=fmtp:111 minptime=10;useinbandfec=1",
        "a=rtpmap:8 PCMA/8000",
        "m=video 9 UDP/TLS/RTP/SAVPF 102 103 96 97",
        "c=IN IP4 0.0.0.0",
        "a=mid:1",
        "a=sendonly",
        "a=msid:- v1",
        "a=rtpmap:102 H264/90000",
        "a=rtcp-fb:102 nack",
        "a=fmtp:102 level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42001f",
        "a=rtpmap:103 rtx/90000",
        "a=fmtp:103 apt=102",
        "a=rtpmap:96 VP8/90000",
        "a=rtcp-fb:96 nack pli",
        "a=rtpmap:97 rtx/90000",
        "a=fmtp:97 apt=96",
        "a=ssrc:1234 msid:- v1",
        "",
    ]
)


def test_restrict_codecs_keeps_only_opus_vp8_and_its_rtx() -> None:
    parsed = SessionDescription.parse(restrict_codecs(OFFER))
    audio, video = parsed.media
    assert [c.mimeType for c in audio.rtp.codecs] == ["audio/opus"]
    assert audio.fmt == [111]
    assert [(c.mimeType, c.payloadType) for c in video.rtp.codecs] == [("video/VP8", 96), ("video/rtx", 97)]
    assert video.fmt == [96, 97]
    assert "H264" not in restrict_codecs(OFFER) and "PCMU" not in restrict_codecs(OFFER)


def test_restrict_codecs_refuses_a_section_without_a_forwarded_codec() -> None:
    only_h264 = OFFER.replace(
        "m=video 9 UDP/TLS/RTP/SAVPF 102 103 96 97", "m=video 9 UDP/TLS/RTP/SAVPF 102 103"
    )
    only_h264 = "\r\n".join(
        line for line in only_h264.split("\r\n") if ":96 " not in line and ":97 " not in line
    )
    with pytest.raises(NoForwardableCodec, match="video section 1 offers h264, rtx"):
        restrict_codecs(only_h264)


def test_opus_fmtp_sets_stereo_and_fec_and_removes_them() -> None:
    stereo = opus_fmtp(OFFER, stereo=True)
    assert "a=fmtp:111 minptime=10;stereo=1;sprop-stereo=1;useinbandfec=1" in stereo
    assert wants_stereo(stereo) and not wants_stereo(OFFER)
    mono = opus_fmtp(stereo, stereo=False, fec=False)
    assert "a=fmtp:111 minptime=10\r\n" in mono
    # an Opus format without any fmtp line gets one right after its rtpmap
    bare = OFFER.replace("a=fmtp:111 minptime=10;useinbandfec=1\r\n", "")
    assert "a=rtpmap:111 opus/48000/2\r\na=fmtp:111 useinbandfec=1\r\n" in opus_fmtp(bare, stereo=False)


def test_set_stream_ids_rewrites_msid_of_the_named_mids_only() -> None:
    out = set_stream_ids(OFFER, {"1": ("sess-b", "sess-b:video")})
    assert "a=msid:- a1" in out
    assert "a=msid:sess-b sess-b:video" in out and "a=msid:- v1" not in out
    assert "a=ssrc:1234 msid:sess-b sess-b:video" in out
    parsed = SessionDescription.parse(out)
    assert parsed.media[1].msid == "sess-b sess-b:video"
