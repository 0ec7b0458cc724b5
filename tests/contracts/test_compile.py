"""The compile pipeline: committed artifacts are exactly what the sources compile to."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _load_script() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "compile_contracts", ROOT / "scripts" / "compile_contracts.py"
    )
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def script() -> ModuleType:
    return _load_script()


@pytest.fixture(scope="module")
def compiled(script: ModuleType) -> dict[Path, bytes]:
    return script.compile_all()


def test_committed_artifacts_match_the_sources(
    script: ModuleType, compiled: dict[Path, bytes]
) -> None:
    assert script.check(compiled) == []
    assert sorted(str(p) for p in compiled) == sorted(
        [f"contracts/build/{n}.json" for n in script.CONTRACTS]
        + [f"src/govshare/chain/artifacts/{n}.json" for n in script.CONTRACTS]
    )


def test_check_reports_what_differs(script: ModuleType, compiled: dict[Path, bytes]) -> None:
    changed = dict(compiled)
    path = Path("contracts/build/AccessLedger.json")
    art = json.loads(changed[path])
    art["bytecode"] += "00"
    changed[path] = script.render(art)
    extra = Path("src/govshare/chain/artifacts/Extra.json")
    changed[extra] = b"{}\n"
    del changed[Path("contracts/build/RecordRegistry.json")]
    assert script.check(changed) == [
        "differs: contracts/build/AccessLedger.json (fields: bytecode)",
        "not produced by the sources (stale?): contracts/build/RecordRegistry.json",
        f"missing: {extra}",
    ]


def test_artifacts_are_deterministic_and_complete(
    script: ModuleType, compiled: dict[Path, bytes]
) -> None:
    for path, data in compiled.items():
        assert data.endswith(b"}\n")
        obj = json.loads(data)
        assert script.render(obj) == data  # sorted keys, fixed indent
        assert obj["compiler"]["version"].startswith("0.8.37+commit.")
        assert obj["bytecode"].startswith("0x6") and obj["deployedBytecode"].startswith("0x6")
        if str(path).startswith("contracts/build"):
            assert obj["settings"] == {
                "evmVersion": "cancun",
                "metadata": {"bytecodeHash": "none"},
                "optimizer": {"enabled": True, "runs": 200},
                "viaIR": False,
            }
            assert f"contracts/{obj['contractName']}.sol" in obj["sources"]
            assert "@openzeppelin/contracts/utils/structs/EnumerableSet.sol" in obj["sources"]
            assert all(len(v["sha256"]) == 64 for v in obj["sources"].values())
            assert 0 < obj["deployedBytecodeSize"] <= script.MAX_DEPLOYED_SIZE
            assert 0 < obj["bytecodeSize"] <= script.MAX_INITCODE_SIZE


def test_every_error_is_prefixed_and_every_event_past_tense(compiled: dict[Path, bytes]) -> None:
    for path, data in compiled.items():
        if not str(path).startswith("contracts/build"):
            continue
        obj = json.loads(data)
        name = obj["contractName"]
        ours = [e for e in obj["abi"] if e["type"] == "error" and e["name"].startswith(name)]
        assert ours, name
        for e in obj["abi"]:
            if e["type"] == "event" and e["name"] != "EIP712DomainChanged":
                assert e["name"].endswith("ed"), e["name"]


def test_deployable_contracts_pin_the_compiler_they_are_built_with(script: ModuleType) -> None:
    """What is deployed was compiled by exactly one solc; interfaces may stay a range."""
    for name in script.CONTRACTS:
        source = (ROOT / "contracts" / f"{name}.sol").read_text("utf-8")
        assert f"pragma solidity {script.EXPECTED_SOLC};" in source, name
