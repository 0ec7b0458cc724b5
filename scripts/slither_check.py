#!/usr/bin/env python3
"""Run Slither on the contracts, offline, and compare its findings with the baseline.

    python scripts/slither_check.py          # fail on a finding the baseline does not list
    python scripts/slither_check.py --list   # print every finding, as baseline lines

There is no native solc here, and Slither's own way to one (solc-select) downloads it.
So the sources are compiled by the same solcjs as the artifacts (scripts/compile_contracts.py,
standard JSON, with the ASTs Slither reads) and handed to Slither through a crytic-compile
platform that only parses that output: nothing is downloaded, nothing else is compiled.

The baseline (contracts/slither-baseline.txt) lists every accepted finding, one a line,
as ``<detector> <Contract.function(args)>: <flagged code>`` without line numbers, so
moving code does not disturb it. Lines are grouped in blocks (separated by a blank line)
and each block opens with a comment saying why its findings stay; a finding that occurs
N times in the same function ends with `` x N``. The check fails on a finding that is
not listed, and on a listed one that no longer occurs (fixed: remove it).
"""

from __future__ import annotations

import argparse
import importlib.util
import inspect
import logging
import re
import sys
import tempfile
from collections import Counter
from pathlib import Path
from types import ModuleType
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
BASELINE = ROOT / "contracts" / "slither-baseline.txt"
# OpenZeppelin's code is theirs to analyse; findings there are not ours to fix or list.
FILTER_PATHS = "node_modules/|@openzeppelin/"
OUTPUTS = [
    "abi",
    "devdoc",
    "userdoc",
    "evm.bytecode.object",
    "evm.bytecode.sourceMap",
    "evm.deployedBytecode.object",
    "evm.deployedBytecode.sourceMap",
    "evm.methodIdentifiers",
]


def _compile_script() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "compile_contracts", ROOT / "scripts" / "compile_contracts.py"
    )
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def solcjs_output() -> tuple[str, dict[str, Any]]:
    """(solc version, standard-JSON output with ASTs) of the contracts, by solcjs."""
    cc = _compile_script()
    inp = cc.standard_input()
    inp["settings"]["outputSelection"] = {"*": {"*": OUTPUTS, "": ["ast"]}}
    with tempfile.TemporaryDirectory(prefix="govshare-slither-") as tmp:
        version, out = cc.run_solcjs(inp, Path(tmp))
    errors = [e for e in out.get("errors", []) if e.get("severity") == "error"]
    if errors:
        raise SystemExit("solcjs: " + "\n".join(e.get("formattedMessage", "") for e in errors))
    return cc.short_version(version).split("+")[0], out


def run_slither(version: str, output: dict[str, Any]) -> list[dict[str, Any]]:
    # Imported here: the module docstring and --help must not need Slither installed.
    from crytic_compile import CryticCompile
    from crytic_compile.compilation_unit import CompilationUnit
    from crytic_compile.compiler.compiler import CompilerVersion
    from crytic_compile.platform.abstract_platform import AbstractPlatform
    from crytic_compile.platform.solc_standard_json import parse_standard_json_output
    from crytic_compile.platform.types import Type
    from slither import Slither
    from slither.detectors import all_detectors
    from slither.detectors.abstract_detector import AbstractDetector

    class SolcJsOutput(AbstractPlatform):  # type: ignore[misc]
        """A crytic-compile platform whose compile step parses solcjs's output."""

        NAME = "solcjs-output"
        PROJECT_URL = "https://github.com/ethereum/solc-js"
        TYPE = Type.SOLC_STANDARD_JSON

        def compile(self, crytic_compile: Any, **_kwargs: Any) -> None:
            unit = CompilationUnit(crytic_compile, "govshare")
            unit.compiler_version = CompilerVersion(
                compiler="solc", version=version, optimized=True, optimize_runs=200
            )
            parse_standard_json_output(output, unit, solc_working_dir=str(ROOT))

        def clean(self, **_kwargs: Any) -> None:
            pass

        @staticmethod
        def is_supported(_target: str, **_kwargs: Any) -> bool:
            return False

        def is_dependency(self, path: str) -> bool:
            return re.search(FILTER_PATHS, path) is not None

        def _guessed_tests(self) -> list[str]:
            return []

    slither = Slither(CryticCompile(SolcJsOutput(str(ROOT))), filter_paths=[FILTER_PATHS])
    for _, detector in inspect.getmembers(all_detectors, inspect.isclass):
        if issubclass(detector, AbstractDetector):
            slither.register_detector(detector)
    return [finding for group in slither.run_detectors() for finding in group]


def finding_key(finding: dict[str, Any]) -> str:
    """``<detector> <where>: <what>`` with no line numbers."""
    where: list[str] = []
    what: list[str] = []
    for element in finding["elements"]:
        fields = element.get("type_specific_fields", {})
        if element["type"] == "function":
            parent = fields.get("parent", {}).get("name", "?")
            where.append(f"{parent}.{fields.get('signature', element['name'])}")
        elif element["type"] == "node":
            what.append(" ".join(str(element["name"]).split()))
        else:
            what.append(f"{element['type']} {element['name']}")
    return f"{finding['check']} {', '.join(where) or '-'}: {' ; '.join(what) or '-'}"


def read_baseline(path: Path) -> tuple[Counter[str], list[str]]:
    """(accepted findings with their counts, problems with the file itself)."""
    accepted: Counter[str] = Counter()
    problems: list[str] = []
    justified = False
    for number, raw in enumerate(path.read_text("utf-8").splitlines(), start=1):
        line = raw.strip()
        if not line:
            justified = False  # a new block needs its own reason
        elif line.startswith("#"):
            justified = True
        else:
            if not justified:
                problems.append(f"{path.name}:{number}: no comment says why this stays")
            match = re.fullmatch(r"(.*?) x (\d+)", line)
            key, count = (match.group(1), int(match.group(2))) if match else (line, 1)
            accepted[key] += count
    return accepted, problems


def baseline_lines(found: Counter[str]) -> list[str]:
    return [key if n == 1 else f"{key} x {n}" for key, n in sorted(found.items())]


def compare(found: Counter[str], accepted: Counter[str]) -> list[str]:
    """What differs between the findings and the baseline (nothing: the check passes)."""
    new = [f"new finding: {line}" for line in baseline_lines(found - accepted)]
    gone = [
        f"listed but no longer found (remove it from the baseline): {line}"
        for line in baseline_lines(accepted - found)
    ]
    return new + gone


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--list", action="store_true", help="print every finding as baseline lines")
    args = ap.parse_args(argv)
    logging.disable(logging.WARNING)  # Slither logs each detector's progress
    found = Counter(finding_key(f) for f in run_slither(*solcjs_output()))
    if args.list:
        print("\n".join(baseline_lines(found)))
        return 0
    accepted, problems = read_baseline(BASELINE)
    problems += compare(found, accepted)
    if problems:
        print("slither: the findings differ from contracts/slither-baseline.txt:", file=sys.stderr)
        for p in problems:
            print(f"  {p}", file=sys.stderr)
        print(
            "Fix a new finding, or list it in the baseline under a comment saying why it "
            "stays (`python scripts/slither_check.py --list` prints every finding).",
            file=sys.stderr,
        )
        return 1
    print(f"slither: {sum(found.values())} findings, all in the baseline.", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
