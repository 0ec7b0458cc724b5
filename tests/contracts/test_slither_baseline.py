"""The Slither baseline's rules (scripts/slither_check.py; Slither itself runs in `make check`)."""

from __future__ import annotations

import importlib.util
from collections import Counter
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def script() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "slither_check", ROOT / "scripts" / "slither_check.py"
    )
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_committed_baseline_gives_a_reason_for_every_finding(script: ModuleType) -> None:
    accepted, problems = script.read_baseline(script.BASELINE)
    assert problems == []
    assert accepted and all(n >= 1 for n in accepted.values())


def test_a_finding_without_a_reason_is_refused(script: ModuleType, tmp_path: Path) -> None:
    f = tmp_path / "baseline.txt"
    f.write_text(
        "# why these stay\n"
        "timestamp A.f(): block.timestamp > t\n"
        "unused-return A.g(): s.add(x) x 2\n"
        "\n"
        "timestamp A.h(): block.timestamp < t\n"
    )
    accepted, problems = script.read_baseline(f)
    assert accepted == Counter(
        {
            "timestamp A.f(): block.timestamp > t": 1,
            "unused-return A.g(): s.add(x)": 2,
            "timestamp A.h(): block.timestamp < t": 1,
        }
    )
    assert problems == ["baseline.txt:5: no comment says why this stays"]


def test_new_and_fixed_findings_both_fail_the_check(script: ModuleType) -> None:
    accepted = Counter({"timestamp A.f(): x": 1, "unused-return A.g(): y": 2})
    assert script.compare(Counter(accepted), accepted) == []
    found = Counter(
        {"timestamp A.f(): x": 1, "unused-return A.g(): y": 1, "reentrancy A.h(): z": 1}
    )
    assert script.compare(found, accepted) == [
        "new finding: reentrancy A.h(): z",
        "listed but no longer found (remove it from the baseline): unused-return A.g(): y",
    ]


def test_findings_are_keyed_without_line_numbers(script: ModuleType) -> None:
    finding = {
        "check": "timestamp",
        "elements": [
            {
                "type": "function",
                "name": "f",
                "type_specific_fields": {"parent": {"name": "A"}, "signature": "f(uint256)"},
            },
            {"type": "node", "name": "block.timestamp\n   > t", "type_specific_fields": {}},
        ],
    }
    assert script.finding_key(finding) == "timestamp A.f(uint256): block.timestamp > t"
