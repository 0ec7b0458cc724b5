"""Kubo daemons for the local consortium (``govshare dev up --store kubo``): one
per department, all in one private swarm, on this machine's loopback.

Each node has its repo under ``HOME/dev/kubo/CODE`` (kept across ``dev down`` and
``dev up``: blocks, pins and identity), the home's swarm key (``HOME/dev/kubo/
swarm.key``, 0600, made once), loopback-only RPC API and TCP swarm ports (chosen
at the first ``dev up`` and remembered by the caller), no gateway, no bootstrap,
no routing system, no mDNS: the members are joined by ``Peering.Peers`` alone and
exchange blocks by bitswap, which is how a broker reads another department's
record-batch manifest. A daemon runs detached (it outlives the command that
started it) with its pid in ``daemon.pid``; :meth:`DevKubo.stop` ends it.

The binary: ``GOVSHARE_KUBO`` (the ``kubo`` setting), else ``.tools/bin/ipfs`` of
this source tree (``make setup`` builds it), else ``ipfs`` on PATH.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import httpx

from govshare.errors import DevNodeError
from govshare.home import dev_state_path

__all__ = ["DevKubo", "dev_kubo_urls", "find_kubo"]


def dev_kubo_urls(home: Path) -> dict[str, str]:
    """The RPC URLs of a dev home's Kubo nodes, by department (none unless its
    consortium was brought up with ``--store kubo``); read from the dev state
    (``HOME/dev/devnet.json``, written by ``govshare dev up``)."""
    try:
        state = json.loads(dev_state_path(home).read_text())
        nodes = state.get("kubo") or {}
        return {str(c): f"http://127.0.0.1:{int(p['api'])}" for c, p in nodes.items()}
    except (OSError, ValueError, TypeError, KeyError, AttributeError):
        return {}


def find_kubo(explicit: str | os.PathLike[str] | None = None) -> Path:
    """Locate the ``ipfs`` binary (see the module docstring)."""
    if explicit:
        p = Path(explicit)
        if p.is_file() and os.access(p, os.X_OK):
            return p
        raise DevNodeError(f"GOVSHARE_KUBO points to {p}, which is not an executable file.")
    for parent in Path(__file__).resolve().parents:
        candidate = parent / ".tools" / "bin" / "ipfs"
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return candidate
    found = shutil.which("ipfs")
    if found:
        return Path(found)
    raise DevNodeError(
        "Kubo (ipfs) was not found: `make setup` builds it into .tools/bin, or set "
        "GOVSHARE_KUBO to the ipfs binary."
    )


class DevKubo:
    """One department's Kubo node of the local consortium."""

    def __init__(self, root: Path, exe: Path, *, api_port: int, swarm_port: int) -> None:
        self.root = root
        self.repo = root / "repo"
        self.exe = exe
        self.api_port = api_port
        self.swarm_port = swarm_port
        self.pid_file = root / "daemon.pid"
        self.log = root / "daemon.log"

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.api_port}"

    @property
    def store_url(self) -> str:
        """The broker's ``store`` setting for this node."""
        return f"kubo:{self.api_url}"

    def _cmd(self, *args: str) -> list[str]:
        # the repo named on the command line (not IPFS_PATH): the daemon is then
        # recognisable by its command line, and no environment is read here
        return [str(self.exe), "--repo-dir", str(self.repo), *args]

    def _ipfs(self, *args: str) -> str:
        done = subprocess.run(
            self._cmd(*args),
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        if done.returncode != 0:
            raise DevNodeError(f"ipfs {' '.join(args)} failed: {done.stderr.strip()[-500:]}")
        return done.stdout

    # -- the repo ----------------------------------------------------------------------------

    def init(self, swarm_key: str) -> None:
        """Create the repo once (with the swarm key); later calls keep it."""
        self.root.mkdir(parents=True, exist_ok=True)
        os.chmod(self.root, 0o700)
        if not (self.repo / "config").is_file():
            self._ipfs("init", "--profile=test", "--empty-repo")
        key = self.repo / "swarm.key"
        key.write_text(swarm_key)
        key.chmod(0o600)

    @property
    def peer_id(self) -> str:
        return str(self._config()["Identity"]["PeerID"])

    def _config(self) -> dict[str, Any]:
        data: dict[str, Any] = json.loads((self.repo / "config").read_text())
        return data

    def configure(self, peers: list[tuple[str, int]]) -> None:
        """Loopback ports, a private swarm of ``peers`` (peer id, swarm port)."""
        cfg = self._config()
        settings: dict[str, Any] = {
            "Addresses.API": f"/ip4/127.0.0.1/tcp/{self.api_port}",
            "Addresses.Gateway": [],
            "Addresses.Swarm": [f"/ip4/127.0.0.1/tcp/{self.swarm_port}"],
            "Bootstrap": [],
            "Peering.Peers": [
                {"ID": pid, "Addrs": [f"/ip4/127.0.0.1/tcp/{port}"]} for pid, port in peers
            ],
            "Routing.Type": "none",
            "Routing.DelegatedRouters": [],
            "Discovery.MDNS.Enabled": False,
            "Swarm.DisableNatPortMap": True,
            "Swarm.Transports.Network.QUIC": False,  # a private network runs over TCP only
            "Swarm.Transports.Network.WebTransport": False,
            "Swarm.Transports.Network.WebRTCDirect": False,
            "Provide.Enabled": False,
            "Plugins.Plugins.telemetry.Config.Mode": "off",
        }
        for key, value in settings.items():
            *parents, last = key.split(".")
            node = cfg
            for part in parents:
                if node.get(part) is None:
                    node[part] = {}
                node = node[part]
            node[last] = value
        (self.repo / "config").write_text(json.dumps(cfg, indent=2))

    # -- the daemon --------------------------------------------------------------------------

    def pid(self) -> int | None:
        """The daemon's pid if it runs (and is this repo's, not a recycled pid)."""
        try:
            pid = int(self.pid_file.read_text().strip())
            os.kill(pid, 0)
        except (OSError, ValueError):
            return None
        with contextlib.suppress(OSError):
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
            if str(self.repo).encode() not in cmdline:
                return None
        return pid

    def start(self, timeout: float = 60.0) -> None:
        """Start the daemon (detached) unless it runs; wait until its API answers."""
        if self.pid() is None:
            with open(self.log, "ab") as out:
                proc = subprocess.Popen(
                    self._cmd("daemon", "--enable-gc=false"),
                    stdin=subprocess.DEVNULL,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            self.pid_file.write_text(str(proc.pid))
        deadline = time.monotonic() + timeout
        while True:
            with contextlib.suppress(httpx.HTTPError):
                if httpx.post(self.api_url + "/api/v0/id", timeout=2.0).status_code == 200:
                    return
            if self.pid() is None:
                raise DevNodeError(f"The Kubo daemon of {self.root} exited; see {self.log}.")
            if time.monotonic() > deadline:
                raise DevNodeError(
                    f"The Kubo daemon of {self.root} did not answer; see {self.log}."
                )
            time.sleep(0.2)

    def stop(self, timeout: float = 20.0) -> bool:
        """SIGTERM the daemon (SIGKILL after ``timeout``); False if it was not running."""
        pid = self.pid()
        if pid is None:
            self.pid_file.unlink(missing_ok=True)
            return False
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while self.pid() is not None and time.monotonic() < deadline:
            time.sleep(0.1)
        if self.pid() is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        self.pid_file.unlink(missing_ok=True)
        return True
