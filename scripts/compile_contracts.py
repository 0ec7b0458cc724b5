#!/usr/bin/env python3
"""Compile the Solidity contracts into committed artifacts.

    python scripts/compile_contracts.py           # write the artifacts
    python scripts/compile_contracts.py --check   # fail if the committed ones differ

The compiler is the solcjs in ``node_modules`` (npm ``solc``), driven through standard
JSON by ``scripts/solc_compile.js``; set ``GOVSHARE_SOLC`` to a native ``solc`` binary of
the same version to use that instead (same input, same output). Two artifact sets:

* ``contracts/build/<Name>.json`` — full: abi, bytecode, deployed bytecode, method ids,
  NatSpec, compiler version, settings and the sha256 of every source file compiled
  (including OpenZeppelin's);
* ``src/govshare/chain/artifacts/<Name>.json`` — what the running package loads: abi,
  bytecode, deployed bytecode, compiler version.

Output is deterministic (sorted keys, two-space indent, trailing newline; the bytecode
carries no metadata hash), so recompiling unchanged sources gives byte-identical files.
Deployed code over EIP-170's 24,576 bytes, or init code over EIP-3860's 49,152 bytes,
fails the build: Besu refuses to deploy it.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
CONTRACTS = ("ConsortiumRegistry", "RecordRegistry", "AccessLedger")
BUILD_DIR = Path("contracts/build")
RUNTIME_DIR = Path("src/govshare/chain/artifacts")
NODE_HELPER = Path("scripts/solc_compile.js")
ENV_SOLC = "GOVSHARE_SOLC"

EXPECTED_SOLC = "0.8.37"
SETTINGS: dict[str, Any] = {
    "evmVersion": "cancun",
    "optimizer": {"enabled": True, "runs": 200},
    "viaIR": False,
    # No metadata hash in the bytecode: it would change with every comment edit; the
    # source hashes in the artifact say exactly what was compiled.
    "metadata": {"bytecodeHash": "none"},
}
OUTPUTS = [
    "abi",
    "devdoc",
    "userdoc",
    "evm.bytecode.object",
    "evm.deployedBytecode.object",
    "evm.methodIdentifiers",
]
MAX_DEPLOYED_SIZE = 24_576  # EIP-170
MAX_INITCODE_SIZE = 49_152  # EIP-3860


class CompileError(Exception):
    pass


def standard_input() -> dict[str, Any]:
    sources = {
        f"contracts/{name}.sol": {
            "content": (ROOT / "contracts" / f"{name}.sol").read_text("utf-8")
        }
        for name in CONTRACTS
    }
    selection = {f"contracts/{name}.sol": {name: OUTPUTS} for name in CONTRACTS}
    return {
        "language": "Solidity",
        "sources": sources,
        "settings": {**SETTINGS, "outputSelection": selection},
    }


def run_solcjs(inp: dict[str, Any], workdir: Path) -> tuple[str, dict[str, Any]]:
    in_file = workdir / "input.json"
    out_file = workdir / "output.json"
    in_file.write_text(json.dumps(inp), "utf-8")
    proc = subprocess.run(
        ["node", str(ROOT / NODE_HELPER), str(ROOT), str(in_file), str(out_file)],
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0 or not out_file.exists():
        raise CompileError(f"solcjs failed (exit {proc.returncode}):\n{proc.stderr.strip()}")
    wrapped = json.loads(out_file.read_text("utf-8"))
    return str(wrapped["version"]), wrapped["output"]


def run_native(solc: str, inp: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    version = subprocess.run([solc, "--version"], capture_output=True, text=True, check=True)
    match = re.search(r"Version: (\S+)", version.stdout)
    proc = subprocess.run(
        [solc, "--standard-json", "--base-path", ".", "--include-path", "node_modules"],
        input=json.dumps(inp),
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=False,
    )
    if proc.returncode != 0:
        raise CompileError(f"solc failed (exit {proc.returncode}):\n{proc.stderr.strip()}")
    return (match.group(1) if match else "unknown"), json.loads(proc.stdout)


def short_version(version: str) -> str:
    """``0.8.37+commit.f401782d.Emscripten.clang`` -> ``0.8.37+commit.f401782d``: the
    platform suffix differs between solcjs and native solc, the output does not."""
    m = re.match(r"(\d+\.\d+\.\d+\+commit\.[0-9a-f]+)", version)
    return m.group(1) if m else version


def source_file(source_name: str) -> Path:
    base = ROOT / "node_modules" if source_name.startswith("@") else ROOT
    return base / source_name


def sha256_file(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def compile_all() -> dict[Path, bytes]:
    """Compile and return {relative path: file bytes} for every artifact."""
    inp = standard_input()
    native = os.environ.get(ENV_SOLC)
    with tempfile.TemporaryDirectory(prefix="govshare-solc-") as tmp:
        version, out = run_native(native, inp) if native else run_solcjs(inp, Path(tmp))
    errors = [e for e in out.get("errors", []) if e.get("severity") == "error"]
    warnings = [e for e in out.get("errors", []) if e.get("severity") != "error"]
    # Warnings about OpenZeppelin's own code are theirs to fix; show only ours.
    for w in warnings:
        if not w.get("sourceLocation", {}).get("file", "").startswith("@"):
            print(w.get("formattedMessage", w.get("message")), file=sys.stderr)
    if errors:
        raise CompileError("\n".join(e.get("formattedMessage", e["message"]) for e in errors))
    version = short_version(version)
    if not version.startswith(EXPECTED_SOLC + "+"):
        raise CompileError(f"expected solc {EXPECTED_SOLC}, got {version}")

    sources = {name: {"sha256": sha256_file(source_file(name))} for name in sorted(out["sources"])}
    settings = json.loads(json.dumps(SETTINGS))
    files: dict[Path, bytes] = {}
    problems: list[str] = []
    for name in CONTRACTS:
        source_name = f"contracts/{name}.sol"
        c = out["contracts"][source_name][name]
        bytecode = "0x" + c["evm"]["bytecode"]["object"]
        deployed = "0x" + c["evm"]["deployedBytecode"]["object"]
        size, init_size = (len(deployed) - 2) // 2, (len(bytecode) - 2) // 2
        if size > MAX_DEPLOYED_SIZE:
            problems.append(f"{name}: deployed code {size} bytes > EIP-170 {MAX_DEPLOYED_SIZE}")
        if init_size > MAX_INITCODE_SIZE:
            problems.append(f"{name}: init code {init_size} bytes > EIP-3860 {MAX_INITCODE_SIZE}")
        full = {
            "contractName": name,
            "sourceName": source_name,
            "abi": c["abi"],
            "bytecode": bytecode,
            "deployedBytecode": deployed,
            "bytecodeSize": init_size,
            "deployedBytecodeSize": size,
            "methodIdentifiers": c["evm"]["methodIdentifiers"],
            "devdoc": c.get("devdoc", {}),
            "userdoc": c.get("userdoc", {}),
            "compiler": {"name": "solc", "version": version},
            "settings": settings,
            "sources": sources,
        }
        runtime = {
            "contractName": name,
            "abi": c["abi"],
            "bytecode": bytecode,
            "deployedBytecode": deployed,
            "compiler": {"name": "solc", "version": version},
            "evmVersion": settings["evmVersion"],
        }
        files[BUILD_DIR / f"{name}.json"] = render(full)
        files[RUNTIME_DIR / f"{name}.json"] = render(runtime)
        print(f"{name}: deployed {size} bytes, init {init_size} bytes", file=sys.stderr)
    if problems:
        raise CompileError("\n".join(problems))
    return files


def render(obj: Any) -> bytes:
    return (json.dumps(obj, indent=2, sort_keys=True, ensure_ascii=True) + "\n").encode()


def committed(dirs: tuple[Path, ...]) -> dict[Path, bytes]:
    found: dict[Path, bytes] = {}
    for d in dirs:
        for f in sorted((ROOT / d).glob("*.json")):
            found[f.relative_to(ROOT)] = f.read_bytes()
    return found


def check(files: dict[Path, bytes]) -> list[str]:
    have = committed((BUILD_DIR, RUNTIME_DIR))
    diffs = []
    for path in sorted(set(files) | set(have)):
        if path not in have:
            diffs.append(f"missing: {path}")
        elif path not in files:
            diffs.append(f"not produced by the sources (stale?): {path}")
        elif have[path] != files[path]:
            diffs.append(f"differs: {path}{describe(have[path], files[path])}")
    return diffs


def describe(old: bytes, new: bytes) -> str:
    try:
        a, b = json.loads(old), json.loads(new)
    except ValueError:
        return " (not JSON)"
    keys = sorted(k for k in set(a) | set(b) if a.get(k) != b.get(k))
    return f" (fields: {', '.join(keys)})" if keys else " (formatting)"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--check", action="store_true", help="verify the committed artifacts")
    args = ap.parse_args(argv)
    try:
        files = compile_all()
    except CompileError as exc:
        print(f"compile failed:\n{exc}", file=sys.stderr)
        return 1
    if args.check:
        diffs = check(files)
        if diffs:
            print("artifacts are not what the sources compile to:", file=sys.stderr)
            for d in diffs:
                print(f"  {d}", file=sys.stderr)
            print("run `make compile` and commit the result.", file=sys.stderr)
            return 1
        print("artifacts match the sources.", file=sys.stderr)
        return 0
    for path, data in files.items():
        target = ROOT / path
        target.parent.mkdir(parents=True, exist_ok=True)
        if not target.exists() or target.read_bytes() != data:
            target.write_bytes(data)
            print(f"wrote {path}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
