"""Every failure the SDK raises is a :class:`SwitchboardError`.

The coordinator and the SFU answer errors as JSON ``{"code": ..., "message": ...}``; the SDK maps each
``code`` (or, failing that, the HTTP status) to one of the subclasses below, so callers can catch
exactly what they can act on.
"""

from __future__ import annotations

from typing import ClassVar


class SwitchboardError(Exception):
    """Base class of every error raised by switchboard."""

    code: ClassVar[str] = "internal_error"
    status: ClassVar[int] = 500

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code  # type: ignore[misc]

    def __str__(self) -> str:
        return self.message


class InvalidRequestError(SwitchboardError):
    """The request was malformed: bad JSON, wrong types, unknown fields, bad values."""

    code = "invalid_request"
    status = 400


class AuthenticationError(SwitchboardError):
    """The token is missing, forged, expired or signed for another API key."""

    code = "unauthenticated"
    status = 401


class PermissionDeniedError(SwitchboardError):
    """The user is authenticated but the call's grants do not allow this."""

    code = "permission_denied"
    status = 403


class NotFoundError(SwitchboardError):
    """No such call (or member, or user)."""

    code = "not_found"
    status = 404


class CallStateError(SwitchboardError):
    """The call is in a state where this cannot be done (ended, not joined, not ringing, ...)."""

    code = "conflict"
    status = 409


class PayloadTooLargeError(InvalidRequestError):
    """The request body exceeds the server's limit."""

    code = "payload_too_large"
    status = 413


class RateLimitedError(SwitchboardError):
    """Too many requests; retry after ``retry_after`` seconds."""

    code = "rate_limited"
    status = 429

    def __init__(self, message: str, *, code: str | None = None, retry_after: float = 1.0) -> None:
        super().__init__(message, code=code)
        self.retry_after = retry_after


class NetworkError(SwitchboardError):
    """The coordinator or SFU could not be reached, or the connection dropped."""

    code = "network_error"
    status = 503


class DeviceError(SwitchboardError):
    """An audio device cannot be used: not found, PortAudio missing, or it refused the stream."""

    code = "device_error"
    status = 500


_BY_STATUS: dict[int, type[SwitchboardError]] = {
    400: InvalidRequestError,
    401: AuthenticationError,
    403: PermissionDeniedError,
    404: NotFoundError,
    409: CallStateError,
    413: PayloadTooLargeError,
    429: RateLimitedError,
}


def error_for(status: int, code: str | None, message: str) -> SwitchboardError:
    """The SDK exception for an error answer from the server."""
    cls = _BY_STATUS.get(status, SwitchboardError)
    return cls(message, code=code)


__all__ = [
    "AuthenticationError",
    "CallStateError",
    "DeviceError",
    "InvalidRequestError",
    "NetworkError",
    "NotFoundError",
    "PayloadTooLargeError",
    "PermissionDeniedError",
    "RateLimitedError",
    "SwitchboardError",
    "error_for",
]
