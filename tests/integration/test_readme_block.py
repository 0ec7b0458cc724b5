"""The README's "Try it as a new user" block, run as written, start to end.

The block is taken from README.md as it stands and run by bash with ``-e``
(and ``pipefail``, ``-u``): any step that exits non-zero fails the test, which
shows every command (``-x``) and its output. Steps the README shows being
refused are written ``! govshare …`` there, so a refusal that stops happening
fails too; their messages are checked below. Around the block only what a new
user has is given: an empty folder as the working directory, the venv's bin on
``PATH`` (``make setup`` makes it; the suite runs in a checkout that is set up,
so ``make`` here is a stand-in that checks it is asked for ``setup`` only), no
``GOVSHARE_*`` from the caller's shell. The block names its passwords and its
home (``$PWD/.try``, in the temp folder) itself.

It uses the usual ports (the chain on 8545, brokers from 8701), as a new user's
consortium does: it waits for the demo's lock (``tests/integration/test_demo.py``)
and skips when one of those ports is taken by something else. Whatever happens,
``govshare dev down`` runs at the end and any process of the home still alive
is killed by its pid.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from govshare.chain.devnode import port_bindable
from integration.test_demo import one_demo_at_a_time

pytestmark = [pytest.mark.integration, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
BIN = Path(sys.executable).parent
PORTS = (8545, 8701, 8702, 8703, 8704)  # the chain; TAX, MARKET, COURT, then CUSTOMS

MAKE_SHIM = """#!/bin/sh
# The suite runs in a checkout that is set up: `make setup` is all the block may ask.
[ "$*" = "setup" ] || { echo "the README block ran: make $*" >&2; exit 2; }
echo "make setup: done already (the suite's checkout)"
"""


def readme_block() -> str:
    """The ```sh block under the heading "## Try it as a new user"."""
    text = README.read_text(encoding="utf-8")
    m = re.search(r"^## Try it as a new user\n(.*?)^```sh\n(.*?)^```$", text, re.M | re.S)
    assert m is not None, "README.md has no sh block under '## Try it as a new user'"
    return m.group(2)


def _pids(home: Path) -> list[int]:
    """The processes this home started: its brokers and its chain (by their pid files)."""
    files = [*home.glob("dev/*.pid"), *home.glob("chain/*.pid"), *home.glob("dev/**/*.pid")]
    out = []
    for f in files:
        with contextlib.suppress(OSError, ValueError):
            out.append(int(f.read_text().strip()))
    return out


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    with contextlib.suppress(OSError):  # a zombie is not alive
        if Path(f"/proc/{pid}/stat").read_text().split(") ", 1)[1].startswith("Z"):
            return False
    return True


def _ours(pid: int, home: Path) -> bool:
    """Whether ``pid`` is still a process of this home (not a recycled pid)."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        environ = Path(f"/proc/{pid}/environ").read_bytes()
    except OSError:
        return False
    return str(home).encode() in cmdline or f"GOVSHARE_HOME={home}".encode() in environ


def stop_everything(home: Path, env: dict[str, str]) -> list[int]:
    """``govshare dev down`` for the home, then SIGKILL to any of its processes
    still alive; returns the pids that had to be killed."""
    before = _pids(home)
    with contextlib.suppress(subprocess.TimeoutExpired):
        subprocess.run(
            [str(BIN / "govshare"), "dev", "down"],
            env={**env, "GOVSHARE_HOME": str(home)},
            capture_output=True,
            timeout=120,
        )
    killed = []
    for pid in set(before + _pids(home)):
        if _alive(pid) and _ours(pid, home):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            killed.append(pid)
    return killed


def test_the_readme_block_runs_as_written(tmp_path: Path) -> None:
    block = readme_block()
    work = tmp_path / "newcomer"
    work.mkdir()
    shims = tmp_path / "shims"
    shims.mkdir()
    (shims / "make").write_text(MAKE_SHIM)
    (shims / "make").chmod(0o755)
    script = tmp_path / "try-it.sh"
    script.write_text(block)
    home = work / ".try"  # what the block exports as GOVSHARE_HOME
    env = {k: v for k, v in os.environ.items() if not k.startswith("GOVSHARE_")}
    env.update(
        PATH=f"{shims}:{BIN}:{env.get('PATH', '/usr/bin:/bin')}",
        GOVSHARE_HOME=str(home),
        COLUMNS="100",
        PS4="+ README: ",
    )
    with one_demo_at_a_time():
        busy = [p for p in PORTS if not port_bindable("127.0.0.1", p)]
        if busy:
            pytest.skip(f"the README's consortium uses ports {PORTS}; taken here: {busy}")
        started = time.monotonic()
        try:
            proc = subprocess.run(
                ["bash", "-eEuxo", "pipefail", str(script)],
                cwd=work,
                env=env,
                stdin=subprocess.DEVNULL,  # nothing may wait for an answer
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,  # each command (-x) beside its output
                text=True,
                timeout=600,
            )
        finally:
            killed = stop_everything(home, env)
    out = proc.stdout
    took = time.monotonic() - started
    assert proc.returncode == 0, f"the README block failed (exit {proc.returncode}):\n{out}"
    assert not killed, f"the block's `dev down` left processes running: {killed}\n{out}"
    assert "Traceback" not in out, out
    print(f"the README block ran in {took:.0f} s")

    # it showed what it says it shows
    assert "Error: COURT holds no grant" in out, out
    assert re.search(r"Error: .*revoked", out), out
    assert (work / "market-copy.txt").read_bytes() == (work / "cert.txt").read_bytes()
    assert (work / "latest.txt").read_bytes() == (work / "cert.txt").read_bytes()
    assert not (work / "court-copy.txt").exists() and not (work / "again.txt").exists()
    assert (work / "trail.prov.json").is_file() and (work / "report.html").is_file()
    # the last dev up started the broker of CUSTOMS, voted in just before
    assert re.search(r"CUSTOMS\s+http://127\.0\.0\.1:8704\s+pid \d+, ready", out), out
    assert "Stopped the brokers of COURT, CUSTOMS, MARKET, TAX" in out, out
