"""The package metadata in pyproject.toml, in the forms current setuptools accepts
without deprecation warnings (a TOML-table ``project.license`` stops building
after 2027-02-18)."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

PYPROJECT = Path(__file__).resolve().parent.parent / "pyproject.toml"


def _load() -> dict[str, object]:
    with PYPROJECT.open("rb") as f:
        return tomllib.load(f)


def test_license_is_an_spdx_string() -> None:
    project = _load()["project"]
    assert isinstance(project, dict)
    assert project["license"] == "Apache-2.0"
    # setuptools rejects a license classifier beside an SPDX expression
    assert not any("License ::" in c for c in project.get("classifiers", []))


def test_build_backend_supports_spdx_licenses() -> None:
    """SPDX strings in ``project.license`` need setuptools 77 or later."""
    build = _load()["build-system"]
    assert isinstance(build, dict)
    pins = [r for r in build["requires"] if re.match(r"setuptools\b", r)]
    assert len(pins) == 1
    m = re.fullmatch(r"setuptools>=(\d+)(?:\.\d+)*", pins[0].replace(" ", ""))
    assert m is not None, pins[0]
    assert int(m.group(1)) >= 77
