"""Checks of what an application passes to the SDK, done before anything reaches the network.

Every failure here is an :class:`~switchboard.errors.InvalidRequestError` whose message names the
argument, the value given and what is accepted, so a wrong call fails where it is written instead of
as a server answer (or an ``AttributeError``) later. The rules are the server's own: identifiers use
the coordinator's ``Identifier`` pattern (:mod:`switchboard.protocol.coordinator`).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, TypeVar
from urllib.parse import urlsplit

from pydantic import TypeAdapter, ValidationError

from switchboard.errors import InvalidRequestError
from switchboard.protocol import coordinator as m

__all__ = [
    "IDENTIFIER_RULE",
    "MEMBER_ROLES",
    "require_base_url",
    "require_bool",
    "require_identifier",
    "require_identifiers",
    "require_instance",
    "require_optional_identifier",
    "require_positive_number",
]

#: what an id may look like, in words (the coordinator's ``Identifier`` pattern)
IDENTIFIER_RULE = f"1 to {m.MAX_ID_LENGTH} characters from A-Z a-z 0-9 _ - . @"

#: the roles a member may be given (the coordinator's ``MemberRequest.role`` pattern)
MEMBER_ROLES = ("admin", "host", "call_member")

_IDENTIFIER: TypeAdapter[str] = TypeAdapter(m.Identifier)

T = TypeVar("T")


def require_identifier(value: object, what: str) -> str:
    """``value`` if it is a valid id (a user id, call id or call type name), else InvalidRequestError."""
    if not isinstance(value, str):
        raise InvalidRequestError(f"{what} must be a string ({IDENTIFIER_RULE}), not {_describe(value)}")
    try:
        return _IDENTIFIER.validate_python(value)
    except ValidationError:
        raise InvalidRequestError(f"{what} {value!r} is not valid: use {IDENTIFIER_RULE}") from None


def require_optional_identifier(value: object, what: str) -> str | None:
    """Like :func:`require_identifier`, but None passes."""
    return None if value is None else require_identifier(value, what)


def require_identifiers(values: object, what: str) -> list[str]:
    """A list of ids (e.g. user ids to ring or remove); a bare string is refused, not split into letters."""
    items = _require_list(values, what)
    return [require_identifier(v, f"{what}[{i}]") for i, v in enumerate(items)]


def require_instance(value: object, kind: type[T], what: str) -> T:
    """``value`` if it is a ``kind``, else InvalidRequestError naming what was given."""
    if not isinstance(value, kind):
        raise InvalidRequestError(f"{what} must be a {kind.__name__}, not {_describe(value)}")
    return value


def require_bool(value: object, what: str) -> bool:
    """``value`` if it is True or False, else InvalidRequestError (a truthy string is not "on")."""
    if not isinstance(value, bool):
        raise InvalidRequestError(f"{what} needs True or False, not {_describe(value)}")
    return value


def require_positive_number(value: object, what: str, unit: str) -> float:
    """``value`` as a float if it is a number > 0 (bools are refused), else InvalidRequestError."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
        raise InvalidRequestError(f"{what} must be a positive number of {unit}, not {value!r}")
    return float(value)


def require_non_negative_number(value: object, what: str, unit: str) -> float:
    """``value`` as a float if it is a number >= 0 (bools, NaN and infinity are refused), else
    InvalidRequestError."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value < float("inf"):
        raise InvalidRequestError(f"{what} must be a number of {unit} >= 0, not {value!r}")
    return float(value)


def require_base_url(value: object) -> str:
    """The coordinator's base URL: ``http://host[:port][/path]`` or ``https://...``.

    Raises InvalidRequestError for anything else (no scheme, another scheme, no host, a bad port).
    """
    what = "ClientOptions.base_url"
    example = "e.g. 'http://127.0.0.1:3030'"
    if not isinstance(value, str):
        raise InvalidRequestError(f"{what} must be a string URL ({example}), not {_describe(value)}")
    try:
        parts = urlsplit(value)
        port_ok = parts.port is None or parts.port > 0
    except ValueError:
        port_ok = False
    else:
        if parts.scheme in ("http", "https") and parts.hostname and port_ok and not parts.query:
            return value
    raise InvalidRequestError(
        f"{what} {value!r} is not a coordinator URL: use http:// or https:// with a host ({example})"
    )


def _require_list(values: object, what: str) -> list[Any]:
    if isinstance(values, str | bytes) or not isinstance(values, Iterable):
        raise InvalidRequestError(f"{what} must be a list, not {_describe(values)}")
    return list(values)


def _describe(value: object) -> str:
    return "None" if value is None else f"{type(value).__name__} {value!r}"
