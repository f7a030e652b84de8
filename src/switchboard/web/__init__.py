"""The browser side: the JavaScript client (``/sdk/switchboard.js``), the call page (``/``) and CORS.

The JavaScript and the page are package data under ``static/``; :func:`add_web_routes` serves them
from the coordinator, :func:`cors_middleware` answers cross-origin requests (see ``docs/browser.md``).
"""

from switchboard.web.cors import cors_middleware
from switchboard.web.options import WebOptions
from switchboard.web.routes import WEB_OPTIONS_KEY, add_web_routes

__all__ = ["WEB_OPTIONS_KEY", "WebOptions", "add_web_routes", "cors_middleware"]
