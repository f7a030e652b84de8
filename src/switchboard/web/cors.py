"""CORS for the coordinator's REST API (Fetch standard, "CORS protocol").

A request with an ``Origin`` header from an allowed origin gets ``Access-Control-Allow-Origin``
(the origin itself, with ``Vary: Origin``) and the headers a page may read. A preflight (``OPTIONS``
with ``Access-Control-Request-Method``) is answered here, before routing: 204 with the allowed
methods and headers for an allowed origin, 403 JSON ``{code: "origin_not_allowed"}`` otherwise.
No credentials mode: auth is a bearer token, never a cookie.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from aiohttp import web
from aiohttp.typedefs import Middleware

from switchboard.web.options import WebOptions

ALLOW_METHODS = "GET, POST, PATCH, DELETE, OPTIONS"
ALLOW_HEADERS = "Authorization, Content-Type, X-Api-Key"
EXPOSE_HEADERS = "Retry-After"
MAX_AGE_S = "600"

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def cors_middleware(options: WebOptions) -> Middleware:
    """An aiohttp middleware applying ``options.cors_origins``; put it outermost."""

    @web.middleware
    async def cors(request: web.Request, handler: Handler) -> web.StreamResponse:
        origin = request.headers.get("Origin")
        if origin is None:
            return await handler(request)
        allowed = options.origin_allowed(origin)
        if request.method == "OPTIONS" and "Access-Control-Request-Method" in request.headers:
            if not allowed:
                return web.json_response(
                    {"code": "origin_not_allowed", "message": f"origin {origin} may not call this server"},
                    status=403,
                )
            return web.Response(
                status=204,
                headers={
                    "Access-Control-Allow-Origin": origin,
                    "Access-Control-Allow-Methods": ALLOW_METHODS,
                    "Access-Control-Allow-Headers": ALLOW_HEADERS,
                    "Access-Control-Max-Age": MAX_AGE_S,
                    "Vary": "Origin",
                },
            )
        response = await handler(request)
        if allowed and not response.prepared:
            response.headers["Access-Control-Allow-Origin"] = origin
            response.headers["Access-Control-Expose-Headers"] = EXPOSE_HEADERS
            response.headers.add("Vary", "Origin")
        return response

    return cors
