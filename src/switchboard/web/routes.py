"""The coordinator's browser routes: the call page, the JavaScript client and the page's config.

- ``GET /`` the call page; ``GET /sdk/{file}.js`` the client's ES modules (entry:
  ``/sdk/switchboard.js``); ``GET /web/{file}`` the page's own script and style.
- ``GET /web/config.json``: ``{api_key, development_tokens}`` for the page (the API key identifies
  the server; it is not a secret, the user token is).
- ``POST /dev/token`` ``{user_id}`` -> ``{user_id, token}``: only when the server runs with
  development tokens (:class:`WebOptions`); 404 ``not_found`` otherwise. Tokens expire after 1 h.
"""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path

from aiohttp import web

from switchboard.errors import InvalidRequestError, NotFoundError
from switchboard.protocol.tokens import create_user_token
from switchboard.web.options import WebOptions

WEB_OPTIONS_KEY = web.AppKey("web_options", WebOptions)
STATIC = Path(str(resources.files("switchboard.web") / "static"))
SDK_FILES = frozenset(
    {"switchboard.js", "client.js", "call.js", "session.js", "audio.js", "multicall.js", "coordinator.js",
     "emitter.js", "errors.js", "rings.js"}
)  # fmt: skip
PAGE_FILES = frozenset({"app.js", "style.css"})
DEV_TOKEN_TTL_S = 3600.0
_TYPES = {".js": "text/javascript", ".css": "text/css", ".html": "text/html"}


def _file(name: str) -> web.FileResponse:
    path = STATIC / name
    response = web.FileResponse(path, headers={"Cache-Control": "no-cache"})
    response.content_type = _TYPES[path.suffix]
    return response


async def _page(request: web.Request) -> web.StreamResponse:
    return _file("index.html")


async def _sdk(request: web.Request) -> web.StreamResponse:
    name = request.match_info["name"]
    if name not in SDK_FILES:
        raise NotFoundError(f"no such client module: /sdk/{name}")
    return _file(name)


async def _page_asset(request: web.Request) -> web.StreamResponse:
    name = request.match_info["name"]
    if name not in PAGE_FILES:
        raise NotFoundError(f"no such page file: /web/{name}")
    return _file(name)


def add_web_routes(app: web.Application, options: WebOptions, api_key: str, api_secret: str) -> None:
    """Add the page, the client modules, the page config and (when allowed) development tokens."""
    app[WEB_OPTIONS_KEY] = options

    async def config(request: web.Request) -> web.Response:
        return web.json_response({"api_key": api_key, "development_tokens": options.development_tokens})

    async def dev_token(request: web.Request) -> web.Response:
        if not options.development_tokens:
            raise NotFoundError("development tokens are off: this server was not started with them")
        try:
            data = json.loads(await request.read() or b"{}")
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise InvalidRequestError(f"body is not valid JSON: {exc}") from exc
        user_id = data.get("user_id") if isinstance(data, dict) else None
        if not isinstance(user_id, str) or not _valid_user_id(user_id):
            raise InvalidRequestError("user_id must be 1-64 characters of letters, digits, _ - . @")
        token = create_user_token(api_secret, user_id, DEV_TOKEN_TTL_S)
        return web.json_response({"user_id": user_id, "token": token})

    app.router.add_get("/", _page)
    app.router.add_get("/sdk/{name}", _sdk)
    app.router.add_get("/web/config.json", config)
    app.router.add_get("/web/{name}", _page_asset)
    app.router.add_post("/dev/token", dev_token)


def _valid_user_id(user_id: str) -> bool:
    return 0 < len(user_id) <= 64 and all(c.isalnum() or c in "_-.@" for c in user_id) and user_id.isascii()
