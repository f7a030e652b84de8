"""Public URLs and ICE servers in the join answer: what a page behind TLS and NAT is handed."""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from pathlib import Path

import aiohttp
import pytest

from switchboard.server import EmbeddedServer, IceServerSettings
from tests.test_cli import assert_one_line_error, run_cli, user_env

ICE = IceServerSettings(
    stun_urls=("stun:stun.example.com:3478",),
    turn_urls=("turn:turn.example.com:3478?transport=udp", "turns:turn.example.com:5349"),
    turn_secret="shared-with-coturn",
    turn_ttl=600.0,
)


async def _join(server: EmbeddedServer, user: str, path: str = "/api/v1/calls/default/public") -> dict:  # type: ignore[type-arg]
    headers = {"X-Api-Key": server.api_key, "Authorization": f"Bearer {server.create_token(user)}"}
    async with (
        aiohttp.ClientSession() as session,
        session.post(f"{server.url}{path}/join", json={"create": True}, headers=headers) as resp,
    ):
        assert resp.status == 200, await resp.text()
        body: dict = await resp.json()  # type: ignore[type-arg]
        return body


async def test_the_join_answer_names_the_public_sfu_url_and_ice_servers() -> None:
    async with EmbeddedServer(
        public_url="https://calls.example.com/",
        public_sfu_url="wss://calls.example.com/sfu",
        ice_servers=ICE,
    ) as server:
        before = time.time()
        credentials = (await _join(server, "alice"))["credentials"]
        assert credentials["server"]["url"] == "wss://calls.example.com/sfu"
        assert server.public_url == "https://calls.example.com"
        assert server.sfu_url.startswith("ws://127.0.0.1:")  # where it listens is unchanged

        stun, turn = credentials["ice_servers"]
        assert stun == {"urls": ["stun:stun.example.com:3478"], "username": None, "credential": None}
        assert turn["urls"] == list(ICE.turn_urls)
        expiry, _, user = turn["username"].partition(":")
        assert user == "alice" and before + 600 <= int(expiry) + 1 <= time.time() + 601
        # what a TURN server with the shared secret (coturn use-auth-secret) computes and accepts
        expected = hmac.new(b"shared-with-coturn", turn["username"].encode(), hashlib.sha1).digest()
        assert base64.b64decode(turn["credential"]) == expected
        bob = (await _join(server, "bob"))["credentials"]["ice_servers"][1]
        assert bob["username"].endswith(":bob") and bob["credential"] != turn["credential"]


async def test_without_settings_the_join_answer_names_the_listening_sfu_and_no_ice_servers(
    server: EmbeddedServer,
) -> None:
    credentials = (await _join(server, "alice"))["credentials"]
    assert credentials["server"]["url"] == server.sfu_url == server.public_sfu_url
    assert credentials["ice_servers"] == []


@pytest.mark.parametrize(
    ("kwargs", "words"),
    [
        ({"public_url": "calls.example.com"}, ["public_url", "https://"]),
        ({"public_sfu_url": "https://calls.example.com/sfu"}, ["public_sfu_url", "wss://"]),
    ],
)
def test_bad_public_urls_are_refused(kwargs: dict[str, str], words: list[str]) -> None:
    with pytest.raises(ValueError) as caught:
        EmbeddedServer(**kwargs)  # type: ignore[arg-type]
    assert all(word in str(caught.value) for word in words)


def test_bad_ice_settings_are_refused() -> None:
    with pytest.raises(ValueError, match="shared secret"):
        IceServerSettings(turn_urls=("turn:turn.example.com",))
    with pytest.raises(ValueError, match="must start with stun:"):
        IceServerSettings(stun_urls=("turn:turn.example.com",))
    with pytest.raises(ValueError, match="must start with turn:"):
        IceServerSettings(turn_urls=("stun:x",), turn_secret="s")


def test_serve_refuses_turn_without_its_secret_in_one_line(tmp_path: Path) -> None:
    done = run_cli(
        "serve", "--port", "0", "--sfu-port", "0", "--turn-url", "turn:t.example.com", env=user_env(tmp_path)
    )
    assert_one_line_error(done, 1, "switchboard serve:", "SWITCHBOARD_TURN_SECRET")
    done = run_cli(
        "serve",
        "--port",
        "0",
        "--sfu-port",
        "0",
        "--public-sfu-url",
        "sfu.example.com",
        env=user_env(tmp_path),
    )
    assert_one_line_error(done, 1, "switchboard serve:", "public_sfu_url")
