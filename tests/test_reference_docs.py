"""The SDK reference is generated from the public modules' docstrings (``make docs``), and builds.

It runs the same command as ``make docs`` into a temporary folder and checks that every public name
the README and docs/getting-started.md point people to has its page entry, so a renamed or
undocumented public name fails here rather than in a reader's browser.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _makefile_modules() -> list[str]:
    line = next(
        ln for ln in (ROOT / "Makefile").read_text().splitlines() if ln.startswith("REFERENCE_MODULES")
    )
    return line.split(":=", 1)[1].split()


def test_the_sdk_reference_builds_and_documents_the_public_names(tmp_path: Path) -> None:
    modules = _makefile_modules()
    assert modules[0] == "switchboard", modules
    subprocess.run([sys.executable, "-m", "pdoc", "-o", str(tmp_path), *modules], check=True, timeout=120)
    pages = {
        "switchboard": tmp_path / "switchboard.html",
        "switchboard.media": tmp_path / "switchboard" / "media.html",
        "switchboard.server": tmp_path / "switchboard" / "server.html",
        "switchboard.errors": tmp_path / "switchboard" / "errors.html",
    }
    expected = {
        "switchboard": [
            "VideoClient",
            "ClientOptions",
            "Call",
            "CallState",
            "MultiCallAudioPolicy",
            "Observable",
        ],
        "switchboard.media": ["ToneMicrophone", "CaptureSpeaker", "DeviceMicrophone", "list_audio_devices"],
        "switchboard.server": ["EmbeddedServer"],
        "switchboard.errors": ["SwitchboardError", "AuthenticationError", "CallStateError"],
    }
    for module, names in expected.items():
        html = pages[module].read_text()
        for name in names:
            # pdoc gives every documented object an anchor named after it
            assert re.search(rf'id="{name}"', html), f"{module}.{name} is missing from the reference"
    # docstrings made it in, not just names
    assert "suspend_audio" in pages["switchboard"].read_text()
