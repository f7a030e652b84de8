"""Log every error answer of the coordinator at INFO, with its code and message.

aiohttp's access log (logger ``aiohttp.access``) already records each request with its status; this
middleware adds *why* a request failed (``401 invalid_api_key: unknown API key``), which is what an
operator needs when a client is misconfigured. It sits outside the error middleware, so it sees the
JSON ``{code, message}`` body every error has.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable

from aiohttp import web

log = logging.getLogger("switchboard.coordinator.requests")

__all__ = ["request_log_middleware"]


@web.middleware
async def request_log_middleware(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    response = await handler(request)
    if response.status >= 400:
        code, message = _error_of(response)
        log.info("%s %s -> %d %s: %s", request.method, request.path, response.status, code, message)
    return response


def _error_of(response: web.StreamResponse) -> tuple[str, str]:
    """The ``code`` and ``message`` of an error response's JSON body (placeholders when it has none)."""
    body = response.body if isinstance(response, web.Response) else None
    if isinstance(body, bytes | bytearray):
        try:
            data = json.loads(body)
        except ValueError:
            data = None
        if isinstance(data, dict):
            return str(data.get("code", "error")), str(data.get("message", ""))
    return "error", getattr(response, "reason", "") or ""
