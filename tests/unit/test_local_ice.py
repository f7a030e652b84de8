"""The rule deciding when media stays on loopback (pure logic: the SFU URL's host)."""

from __future__ import annotations

import pytest

from switchboard.media.local_ice import loopback_ice_address


@pytest.mark.parametrize(
    ("url", "address"),
    [
        ("ws://127.0.0.1:4001/sfu", "127.0.0.1"),
        ("ws://127.8.9.10:4001/sfu", "127.0.0.1"),  # all of 127.0.0.0/8 is loopback
        ("wss://localhost/sfu", "127.0.0.1"),
        ("ws://LocalHost.:80/sfu", "127.0.0.1"),
        ("ws://[::1]:4001/sfu", "::1"),
        ("127.0.0.1", "127.0.0.1"),
        ("[::1]", "::1"),
        ("ws://0.0.0.0:4001/sfu", None),  # the wildcard is not a loopback address
        ("ws://192.0.2.2:4001/sfu", None),
        ("wss://sfu.example.com/sfu", None),
        ("ws://localhost.example.com/sfu", None),  # only the exact name, never resolved
        ("ws://[fe80::1]:4001/sfu", None),
        ("ws://[::ffff:127.0.0.1]:4001/sfu", None),  # an IPv4-mapped address is IPv6, not loopback
        ("ws://[::1/sfu", None),  # malformed
        ("", None),
    ],
)
def test_media_stays_on_loopback_exactly_when_the_sfu_url_names_a_loopback_host(
    url: str, address: str | None
) -> None:
    assert loopback_ice_address(url) == address
