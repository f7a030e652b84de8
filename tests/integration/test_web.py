"""The coordinator's browser surface over real HTTP: the page, the client modules, CORS, dev tokens."""

from __future__ import annotations

import aiohttp

from switchboard.protocol.tokens import verify_user_token
from switchboard.server import EmbeddedServer

PREFLIGHT = {
    "Origin": "https://app.example.com",
    "Access-Control-Request-Method": "POST",
    "Access-Control-Request-Headers": "authorization, content-type, x-api-key",
}


async def test_page_and_client_modules_are_served() -> None:
    async with EmbeddedServer() as server, aiohttp.ClientSession() as http:
        async with http.get(server.url + "/") as page:
            assert page.status == 200
            assert page.content_type == "text/html"
            assert '<script type="module" src="/web/app.js">' in await page.text()
        async with http.get(server.url + "/sdk/switchboard.js") as entry:
            assert entry.status == 200
            assert entry.content_type == "text/javascript"
            body = await entry.text()
            for name in ("VideoClient", "MultiCallAudioPolicy", "CallStatus", "SwitchboardError"):
                assert name in body
        async with http.get(server.url + "/sdk/../cli.py") as escape:
            assert escape.status == 404
        async with http.get(server.url + "/sdk/nothing.js") as missing:
            assert missing.status == 404
            assert (await missing.json())["code"] == "not_found"


async def test_preflight_is_answered_for_any_origin_by_default() -> None:
    async with EmbeddedServer() as server, aiohttp.ClientSession() as http:
        async with http.options(server.url + "/api/v1/calls/default/room", headers=PREFLIGHT) as r:
            assert r.status == 204
            assert r.headers["Access-Control-Allow-Origin"] == "https://app.example.com"
            assert "POST" in r.headers["Access-Control-Allow-Methods"]
            allowed = r.headers["Access-Control-Allow-Headers"].lower()
            assert {"authorization", "content-type", "x-api-key"} <= {h.strip() for h in allowed.split(",")}
        token = server.create_token("alice")
        headers = {"Origin": "https://app.example.com", "X-Api-Key": server.api_key}
        async with http.post(
            server.url + "/api/v1/calls/default/room",
            json={},
            headers={**headers, "Authorization": f"Bearer {token}"},
        ) as ok:
            assert ok.status == 200
            assert ok.headers["Access-Control-Allow-Origin"] == "https://app.example.com"
        async with http.post(server.url + "/api/v1/calls/default/room", json={}, headers=headers) as denied:
            assert denied.status == 401  # errors carry CORS headers too, so the page can read them
            assert denied.headers["Access-Control-Allow-Origin"] == "https://app.example.com"


async def test_a_list_of_origins_restricts() -> None:
    async with (
        EmbeddedServer(cors_origins=["https://app.example.com"]) as server,
        aiohttp.ClientSession() as http,
    ):
        url = server.url + "/api/v1/calls/default/room"
        async with http.options(url, headers=PREFLIGHT) as allowed:
            assert allowed.status == 204
        other = {**PREFLIGHT, "Origin": "https://evil.example.net"}
        async with http.options(url, headers=other) as refused:
            assert refused.status == 403
            assert (await refused.json())["code"] == "origin_not_allowed"
            assert "Access-Control-Allow-Origin" not in refused.headers
        async with http.get(server.url + "/health", headers={"Origin": "https://evil.example.net"}) as plain:
            assert plain.status == 200
            assert "Access-Control-Allow-Origin" not in plain.headers


async def test_development_tokens_only_when_the_server_allows_them() -> None:
    async with EmbeddedServer() as server, aiohttp.ClientSession() as http:
        async with http.get(server.url + "/web/config.json") as config:
            assert await config.json() == {"api_key": server.api_key, "development_tokens": False}
        async with http.post(server.url + "/dev/token", json={"user_id": "alice"}) as r:
            assert r.status == 404
            assert (await r.json())["code"] == "not_found"
    async with EmbeddedServer(development_tokens=True) as server, aiohttp.ClientSession() as http:
        async with http.get(server.url + "/web/config.json") as config:
            assert (await config.json())["development_tokens"] is True
        async with http.post(server.url + "/dev/token", json={"user_id": "alice"}) as r:
            assert r.status == 200
            claims = verify_user_token(server.api_secret, (await r.json())["token"])
            assert claims.user_id == "alice"
        async with http.post(server.url + "/dev/token", json={"user_id": "no spaces"}) as bad:
            assert bad.status == 400
            assert (await bad.json())["code"] == "invalid_request"
        async with http.post(server.url + "/dev/token", data=b"{not json") as garbage:
            assert garbage.status == 400
