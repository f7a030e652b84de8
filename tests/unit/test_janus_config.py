"""The Janus engine's pure parts: the generated configuration and the SDP rewrite."""

from __future__ import annotations

from pathlib import Path

import pytest

from switchboard.server.sfu_janus.janus_process import JanusConfig, render_config
from switchboard.server.sfu_janus.node import janus_config_for
from switchboard.server.sfu_janus.sdp import janus_dtls_client


def _lib(tmp_path: Path) -> Path:
    for folder, names in {
        "plugins": ["libjanus_videoroom.so", "libjanus_echotest.so", "libjanus_sip.so"],
        "transports": ["libjanus_websockets.so", "libjanus_http.so"],
    }.items():
        (tmp_path / folder).mkdir(parents=True)
        for name in names:
            (tmp_path / folder / name).touch()
    return tmp_path


def test_only_videoroom_and_websockets_on_the_api_address(tmp_path: Path) -> None:
    config = JanusConfig(ice_interface="10.1.2.3", event_loops=2, lib_dir=_lib(tmp_path / "lib"))
    files = render_config(config, tmp_path, api_port=8999)
    janus = files["janus.jcfg"]
    assert 'disable = "libjanus_echotest.so,libjanus_sip.so"' in janus
    assert 'disable = "libjanus_http.so"' in janus
    assert "event_loops = 2" in janus
    assert 'ice_enforce_list = "10.1.2.3"' in janus
    assert "stun_server" not in janus and "ignore_mdns = true" in janus
    assert f'configs_folder = "{tmp_path}"' in janus
    ws = files["janus.transport.websockets.jcfg"]
    assert "ws_port = 8999" in ws and 'ws_ip = "127.0.0.1"' in ws and "admin_ws = false" in ws


def test_no_event_loops_setting_means_janus_default(tmp_path: Path) -> None:
    files = render_config(JanusConfig(event_loops=0, lib_dir=_lib(tmp_path / "lib")), tmp_path, 1)
    assert "event_loops =" not in files["janus.jcfg"]
    assert "ice_enforce_list =" not in files["janus.jcfg"]


def test_settings_survive_json() -> None:
    config = JanusConfig(ice_interface="10.0.0.1", event_loops=4)
    assert JanusConfig(**config.to_json()) == config  # type: ignore[arg-type]


def test_ice_follows_the_host_and_loopback_is_refused() -> None:
    assert janus_config_for("10.0.0.7").ice_interface == "10.0.0.7"
    assert janus_config_for("0.0.0.0").ice_interface is None
    assert janus_config_for("10.0.0.7", JanusConfig(ice_interface="eth1")).ice_interface == "eth1"
    with pytest.raises(ValueError, match="non-loopback"):
        janus_config_for("127.0.0.1")


def test_janus_offers_become_dtls_active() -> None:
    section = "m=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=setup:actpass\r\n"
    sdp = "v=0\r\n" + section + section
    out = janus_dtls_client(sdp)
    assert out.count("a=setup:active") == 2 and "actpass" not in out
