"""The coordinator's REST API over real HTTP: success paths, auth failures, malformed input."""

from __future__ import annotations

import time
from typing import Any

import aiohttp
import jwt
import pytest

from switchboard.server import EmbeddedServer


class Rest:
    def __init__(self, server: EmbeddedServer, session: aiohttp.ClientSession) -> None:
        self.server = server
        self.session = session

    async def call(
        self,
        method: str,
        path: str,
        user: str | None = "alice",
        body: Any = None,
        *,
        raw: bytes | None = None,
        token: str | None = None,
        api_key: str | None = None,
    ) -> tuple[int, Any]:
        headers = {"X-Api-Key": api_key if api_key is not None else self.server.api_key}
        if token is None and user is not None:
            token = self.server.create_token(user)
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        data = raw if raw is not None else (None if body is None else __import__("json").dumps(body))
        async with self.session.request(method, self.server.url + path, data=data, headers=headers) as resp:
            return resp.status, await resp.json()


@pytest.fixture
async def rest(server: EmbeddedServer):
    async with aiohttp.ClientSession() as session:
        yield Rest(server, session)


CALL = "/api/v1/calls/default/room1"


async def test_get_or_create_then_get_returns_unchanged(rest: Rest) -> None:
    status, body = await rest.call(
        "POST", CALL, body={"data": {"members": [{"user_id": "bob"}], "custom": {"topic": "standup"}}}
    )
    assert status == 200, body
    assert body["created"] is True
    assert body["call"]["cid"] == "default:room1"
    assert body["call"]["created_by"]["id"] == "alice"
    roles = {mb["user_id"]: mb["role"] for mb in body["members"]}
    assert roles == {"alice": "host", "bob": "call_member"}
    assert "end-call" in body["own_capabilities"]

    status, again = await rest.call("POST", CALL, user="bob", body={"data": {"custom": {"topic": "other"}}})
    assert status == 200 and again["created"] is False
    assert again["call"]["custom"] == {"topic": "standup"}
    assert "end-call" not in again["own_capabilities"]

    status, got = await rest.call("GET", CALL, user="bob")
    assert status == 200 and got["call"]["custom"] == {"topic": "standup"}


async def test_update_end_members_and_join(rest: Rest) -> None:
    await rest.call("POST", CALL, body={"data": {"members": [{"user_id": "bob"}]}})
    status, body = await rest.call(
        "PATCH", CALL, body={"custom": {"x": 1}, "settings_override": {"audio": {"mic_default_on": False}}}
    )
    assert status == 200 and body["call"]["custom"] == {"x": 1}
    assert body["call"]["settings"]["audio"]["mic_default_on"] is False

    status, body = await rest.call(
        "POST",
        CALL + "/members",
        body={"update_members": [{"user_id": "carol", "role": "admin"}], "remove_members": ["bob"]},
    )
    assert status == 200
    assert {mb["user_id"]: mb["role"] for mb in body["members"]} == {"alice": "host", "carol": "admin"}

    status, join = await rest.call("POST", CALL + "/join", user="dave", body={})
    assert status == 200, join
    assert join["credentials"]["server"]["url"].startswith("ws")
    claims = jwt.decode(
        join["credentials"]["token"], rest.server.api_secret, algorithms=["HS256"], audience="switchboard-sfu"
    )
    assert claims["user_id"] == "dave" and claims["call_cid"] == "default:room1"
    assert claims["session_id"] == join["session_id"]
    assert claims["grants"] == {"send_audio": True, "send_video": True}

    status, body = await rest.call("POST", CALL + "/mark_ended", user="bob")
    assert status == 403 and body["code"] == "permission_denied"
    status, body = await rest.call("POST", CALL + "/mark_ended")
    assert status == 200 and body["call"]["ended_at"] is not None
    status, body = await rest.call("POST", CALL + "/mark_ended")
    assert status == 409 and body["code"] == "conflict"
    status, body = await rest.call("POST", CALL + "/join", body={})
    assert status == 409


@pytest.mark.parametrize(
    ("call_type", "role", "expected"),
    [
        ("default", "call_member", {"read-call", "join-call", "send-audio", "send-video"}),
        ("default", "user", {"read-call", "join-call", "send-audio", "send-video"}),
        ("livestream", "call_member", {"read-call"}),
        ("livestream", "user", {"read-call"}),
        ("audio_room", "user", {"read-call"}),
        (
            "development",
            "user",
            {
                "read-call",
                "join-call",
                "join-backstage",
                "send-audio",
                "send-video",
                "end-call",
                "update-call",
                "update-call-member",
                "mute-users",
            },
        ),
    ],
)
async def test_capabilities_per_call_type_and_role(
    rest: Rest, call_type: str, role: str, expected: set[str]
) -> None:
    members = [{"user_id": "bob", "role": role}] if role != "user" else []
    path = f"/api/v1/calls/{call_type}/c1"
    status, body = await rest.call("POST", path, body={"data": {"members": members}})
    assert status == 200
    host_caps = set(body["own_capabilities"])
    assert {"join-backstage", "update-call", "end-call", "send-audio"} <= host_caps
    if call_type == "audio_room":
        assert "send-video" not in host_caps  # audio only, even for hosts
    status, body = await rest.call("GET", path, user="bob")
    assert status == 200
    assert set(body["own_capabilities"]) == expected


async def test_backstage_and_go_live(rest: Rest) -> None:
    path = "/api/v1/calls/livestream/show"
    status, body = await rest.call("POST", path, user="host", body={})
    assert body["call"]["backstage"] is True
    status, body = await rest.call("POST", path + "/join", user="viewer", body={})
    assert status == 403 and "backstage" in body["message"]
    status, _ = await rest.call("POST", path + "/join", user="host", body={})
    assert status == 200
    status, body = await rest.call("POST", path + "/go_live", user="viewer")
    assert status == 403
    status, body = await rest.call("POST", path + "/go_live", user="host")
    assert status == 200 and body["call"]["backstage"] is False
    status, join = await rest.call("POST", path + "/join", user="viewer", body={})
    assert status == 200
    claims = jwt.decode(
        join["credentials"]["token"], rest.server.api_secret, algorithms=["HS256"], audience="switchboard-sfu"
    )
    assert claims["grants"] == {"send_audio": False, "send_video": False}
    status, body = await rest.call("POST", path + "/stop_live", user="host")
    assert body["call"]["backstage"] is True
    status, _ = await rest.call("POST", path + "/join", user="viewer", body={})
    assert status == 403


async def test_auth_failures_are_401_json(rest: Rest, server: EmbeddedServer) -> None:
    status, body = await rest.call("GET", CALL, user=None)
    assert status == 401 and body["code"] == "token_missing"
    forged = jwt.encode(
        {"user_id": "alice", "iat": int(time.time())},
        "not-the-secret-but-long-enough-for-hs256-keys",
        algorithm="HS256",
    )
    status, body = await rest.call("GET", CALL, token=forged)
    assert status == 401 and body["code"] == "token_invalid"
    expired = jwt.encode(
        {"user_id": "alice", "iat": 0, "exp": int(time.time()) - 10}, server.api_secret, algorithm="HS256"
    )
    status, body = await rest.call("GET", CALL, token=expired)
    assert status == 401 and body["code"] == "token_expired"
    status, body = await rest.call("GET", CALL, api_key="wrong-key")
    assert status == 401 and body["code"] == "invalid_api_key"
    status, body = await rest.call("GET", CALL, token="garbage")
    assert status == 401
    no_user = jwt.encode({"iat": int(time.time())}, server.api_secret, algorithm="HS256")
    status, body = await rest.call("GET", CALL, token=no_user)
    assert status == 401


@pytest.mark.parametrize(
    ("raw", "detail"),
    [
        (b"{not json", "not valid JSON"),
        (b"[1, 2]", "JSON object"),
        (b'{"ring": "loud"}', "schema"),
        (b'{"data": {"members": [{"user_id": 5}]}}', "schema"),
        (b'{"surprise": true}', "schema"),
        (b'{"data": {"members": [{"user_id": "x", "role": "king"}]}}', "schema"),
        (b"\xff\xfe", "not valid JSON"),
    ],
)
async def test_malformed_bodies_are_400_and_server_keeps_serving(rest: Rest, raw: bytes, detail: str) -> None:
    status, body = await rest.call("POST", CALL, raw=raw)
    assert status == 400, body
    assert body["code"] == "invalid_request" and detail in body["message"]
    status, _ = await rest.call("GET", CALL)
    assert status == 404  # nothing was created by the bad request
    status, _ = await rest.call("POST", CALL, body={})
    assert status == 200


async def test_unknown_call_type_bad_id_and_route(rest: Rest) -> None:
    status, body = await rest.call("GET", "/api/v1/calls/default/nope")
    assert status == 404 and body["code"] == "not_found"
    status, body = await rest.call("POST", "/api/v1/calls/bogus/x", body={})
    assert status == 404 and "bogus" in body["message"]
    status, body = await rest.call("POST", "/api/v1/calls/default/" + "x" * 65, body={})
    assert status == 400
    status, body = await rest.call("GET", "/api/v1/nothing")
    assert status == 404 and body["code"]


async def test_oversized_body_is_413(rest: Rest) -> None:
    big = b'{"data": {"custom": {"blob": "' + b"x" * 200_000 + b'"}}}'
    status, body = await rest.call("POST", CALL, raw=big)
    assert status == 413 and body["code"] == "payload_too_large"
    status, _ = await rest.call("POST", CALL, body={})
    assert status == 200


async def test_wrong_state_ring_accept(rest: Rest) -> None:
    await rest.call("POST", CALL, body={"data": {"members": [{"user_id": "bob"}]}})
    status, body = await rest.call("POST", CALL + "/accept", user="bob")
    assert status == 409 and "not ringing" in body["message"]
    status, body = await rest.call("POST", CALL + "/ring", user="mallory", body={})
    assert status == 403


async def test_rate_limit_is_429_per_user() -> None:
    async with (
        EmbeddedServer(rate_limit_per_second=1, rate_limit_burst=3) as server,
        aiohttp.ClientSession() as session,
    ):
        rest = Rest(server, session)
        statuses = [(await rest.call("GET", CALL))[0] for _ in range(5)]
        assert statuses[:3] == [404, 404, 404]
        assert statuses[3:] == [429, 429]
        status, _ = await rest.call("GET", CALL, user="bob")
        assert status == 404  # another user's budget is untouched


async def test_openapi_describes_every_route(rest: Rest) -> None:
    async with rest.session.get(rest.server.url + "/openapi.json") as resp:
        doc = await resp.json()
    assert doc["openapi"].startswith("3.")
    ops = {(path, method) for path, item in doc["paths"].items() for method in item}
    assert ("/api/v1/calls/{type}/{id}/join", "post") in ops
    assert ("/api/v1/calls/{type}/{id}", "patch") in ops
    schema = doc["components"]["schemas"]["GetOrCreateCallRequest"]
    assert schema["additionalProperties"] is False
    assert "JoinCallResponse" in doc["components"]["schemas"]


async def test_user_upsert_is_self_only(rest: Rest) -> None:
    status, body = await rest.call("POST", "/api/v1/users", body={"id": "alice", "name": "Alice A"})
    assert status == 200 and body["name"] == "Alice A"
    status, body = await rest.call("POST", "/api/v1/users", body={"id": "bob", "name": "Bob"})
    assert status == 403 and body["code"] == "permission_denied"
