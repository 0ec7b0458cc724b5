"""Benchmark: wall time of `govshare` commands that should start at once (issue 14).

Runs the real console script (``govshare`` beside this interpreter) in a fresh
process, ``--runs`` times per command, and prints the best and median time of
each beside two baselines measured in the same run: ``python -c pass`` (the
interpreter alone) and ``python -c "import click"`` (the least any click CLI
pays). The commands are ``--help`` at every level and those that touch no chain:
``dev status`` with nothing running and ``user list`` / ``user add`` against a
department's broker database, in a throw-away home. A row over ``--target``
seconds (best time) is marked ``!``; ``--json`` adds one JSON object as the last
line.

    python scripts/bench/bench_startup.py
    python scripts/bench/bench_startup.py --runs 9 --json
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

#: The top-level commands (each timed with --help).
GROUPS = [
    "init",
    "dev",
    "consortium",
    "dept",
    "catalog",
    "blob",
    "user",
    "grant",
    "serve",
    "audit",
    "record",
    "request",
    "webhook",
    "login",
    "logout",
]
#: Commands timed, as argument lists ("{n}" becomes the run's number).
COMMANDS: list[list[str]] = [
    ["--help"],
    *([group, "--help"] for group in GROUPS),
    ["record", "fetch", "--help"],
    ["grant", "approve", "--help"],
    ["dept", "list", "--help"],
    ["consortium", "deploy", "--help"],
    ["dev", "up", "--help"],
    ["dev", "status"],
    ["user", "list", "--dept", "TAX"],
    ["user", "add", "bench-{n}", "--role", "clerk", "--dept", "TAX"],
]


def entry_point() -> list[str]:
    """The installed console script, else the same entry through this interpreter."""
    script = Path(sys.executable).with_name("govshare")
    if script.is_file():
        return [str(script)]
    return [
        sys.executable,
        "-c",
        "import sys; from govshare.cli.main import main; sys.exit(main())",
    ]


def clean_env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GOVSHARE_")}
    env.update(GOVSHARE_HOME=str(home), GOVSHARE_PASSWORD="bench-password")
    return env


def timed(argv: Sequence[str], env: dict[str, str]) -> float:
    t0 = time.perf_counter()
    proc = subprocess.run(argv, env=env, capture_output=True, check=False)
    elapsed = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(
            f"{' '.join(argv)} failed ({proc.returncode}): {proc.stderr.decode()[-500:]}"
        )
    return elapsed


def measure(argv: Sequence[str], env: dict[str, str], runs: int) -> tuple[float, float]:
    """(best, median) seconds of ``runs`` runs, after one untimed warm-up run."""
    times = []
    for n in range(runs + 1):
        t = timed([a.replace("{n}", str(n)) for a in argv], env)
        if n:  # (the first run warms the page cache and writes bytecode)
            times.append(t)
    return min(times), statistics.median(times)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=5, help="timed runs per command (default 5)")
    ap.add_argument("--target", type=float, default=0.3, help="seconds a command should take")
    ap.add_argument("--only", default="", help="time only commands containing this text")
    ap.add_argument("--json", action="store_true", help="print one JSON object as the last line")
    args = ap.parse_args()

    home = Path(tempfile.mkdtemp(prefix="bench-startup-"))
    env = clean_env(home)
    govshare = entry_point()
    try:
        # a department with a broker database, for the user commands
        timed([*govshare, "init", "TAX", "--name", "Tax Bureau", "--scrypt-n", "1024"], env)
        timed([*govshare, "user", "add", "warm", "--role", "clerk", "--dept", "TAX"], env)
        py = [sys.executable, "-c"]
        base_pass = measure([*py, "pass"], env, args.runs)
        base_click = measure([*py, "import click"], env, args.runs)
        print(f"{'command':<42} {'best s':>7} {'median':>7} {'×pass':>6} {'×click':>7}")
        for label, (best, median) in (
            ("python -c pass", base_pass),
            ('python -c "import click"', base_click),
        ):
            print(f"{label:<42} {best:7.3f} {median:7.3f}")
        rows: dict[str, dict[str, float]] = {}
        over = []
        for cmd in COMMANDS:
            label = " ".join(cmd).replace("{n}", "N")
            if args.only and args.only not in label:
                continue
            best, median = measure([*govshare, *cmd], env, args.runs)
            mark = "!" if best > args.target else " "
            if best > args.target:
                over.append(label)
            print(
                f"{label:<42} {best:7.3f} {median:7.3f} {best / base_pass[0]:6.1f} "
                f"{best / base_click[0]:7.1f} {mark}",
                flush=True,
            )
            rows[label] = {"best": round(best, 4), "median": round(median, 4)}
        print(f"over {args.target} s (best): {', '.join(over) or 'none'}")
    finally:
        shutil.rmtree(home, ignore_errors=True)
    if args.json:
        print(
            json.dumps(
                {
                    "runs": args.runs,
                    "target_s": args.target,
                    "baseline_pass": {
                        "best": round(base_pass[0], 4),
                        "median": round(base_pass[1], 4),
                    },
                    "baseline_click": {
                        "best": round(base_click[0], 4),
                        "median": round(base_click[1], 4),
                    },
                    "commands": rows,
                    "over_target": over,
                }
            )
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
