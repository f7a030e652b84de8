"""The development key pair ``switchboard serve`` uses when no key pair is set, kept between runs.

Stored as JSON ``{"api_key": ..., "api_secret": ...}`` in ``$XDG_CONFIG_HOME/switchboard/dev-keys.json``
(``~/.config/switchboard/dev-keys.json`` when ``XDG_CONFIG_HOME`` is unset, per the XDG Base Directory
specification), readable by its owner only. Because the pair survives restarts, tokens minted with
``switchboard token`` and keys exported from an earlier run keep working against a restarted server.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from switchboard.protocol.tokens import generate_key_pair

__all__ = ["DevKeyError", "DevKeyPair", "dev_key_path", "load_dev_key_pair", "load_or_create_dev_key_pair"]


class DevKeyError(RuntimeError):
    """The stored development key pair cannot be read or written; the message names the file."""


@dataclass(frozen=True)
class DevKeyPair:
    api_key: str
    api_secret: str
    path: Path
    #: True when this run created the pair (it was not stored before)
    created: bool = False


def dev_key_path() -> Path:
    """Where the development key pair is stored (the file may not exist yet)."""
    base = os.environ.get("XDG_CONFIG_HOME") or ""
    root = Path(base) if os.path.isabs(base) else Path.home() / ".config"
    return root / "switchboard" / "dev-keys.json"


def load_dev_key_pair() -> DevKeyPair | None:
    """The stored pair, or None when none is stored. Raises DevKeyError for an unreadable/corrupt file."""
    path = dev_key_path()
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise DevKeyError(f"cannot read the development key pair in {path}: {exc.strerror}") from None
    try:
        data = json.loads(text)
        key, secret = data["api_key"], data["api_secret"]
        if not (isinstance(key, str) and key and isinstance(secret, str) and secret):
            raise ValueError
    except (ValueError, KeyError, TypeError):
        raise DevKeyError(
            f"{path} is not a development key pair (JSON with api_key and api_secret); "
            "delete it to get a new pair"
        ) from None
    return DevKeyPair(key, secret, path)


def load_or_create_dev_key_pair() -> DevKeyPair:
    """The stored pair; when none is stored, a new one, written with mode 0600 before it is returned."""
    existing = load_dev_key_pair()
    if existing is not None:
        return existing
    path = dev_key_path()
    key, secret = generate_key_pair()
    body = json.dumps({"api_key": key, "api_secret": secret}, indent=2) + "\n"
    partial = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(body)
        os.replace(partial, path)
    except OSError as exc:
        partial.unlink(missing_ok=True)
        raise DevKeyError(f"cannot store the development key pair in {path}: {exc.strerror}") from None
    return DevKeyPair(key, secret, path, created=True)
