"""`make setup` is quiet: a few lines, not pages of pip output and packaging warnings.

A real install from a clean clone takes half a minute and a package index, so this checks what makes
it quiet instead: the plan make would run, and the metadata setuptools would otherwise warn about.
"""

from __future__ import annotations

import shutil
import subprocess
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_every_pip_call_of_make_setup_is_quiet() -> None:
    assert shutil.which("make"), "make is needed for `make setup`"
    plan = subprocess.run(
        ["make", "--dry-run", "--always-make", "setup"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout
    pip_calls = [line for line in plan.splitlines() if " -m pip " in line]
    assert len(pip_calls) >= 2, plan  # pip itself, then the project
    for call in pip_calls:
        assert "--quiet" in call and "--disable-pip-version-check" in call, call


def test_the_license_is_an_spdx_string() -> None:
    """A TOML table here makes every build print setuptools' 15-line deprecation banner, twice."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert project["project"]["license"] == "Apache-2.0"
    requires = project["build-system"]["requires"]
    assert "setuptools>=77" in requires  # the first setuptools that reads an SPDX license string
