"""The local development chain: anvil, from the project's ``node_modules``.

govshare starts and stops anvil itself. A *persistent* dev chain keeps its
ledger under the govshare home (``HOME/chain/state.json``, dumped every second
and on a clean stop), so ``govshare dev chain stop`` / ``start`` keeps every
department, record and grant. A hard kill can lose the last second; the
broker's outbox re-checks the chain after a restart for exactly that reason.

Tests use :class:`AnvilProcess` directly (ephemeral, free port, no state file).
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import random
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from govshare.errors import DevNodeError

ENV_ANVIL = "GOVSHARE_ANVIL"
DEFAULT_PORT = 8545
DEFAULT_CHAIN_ID = 31337
# The contracts are compiled for cancun; run the dev chain on the same rules a
# Besu network with shanghaiTime/cancunTime = 0 applies.
HARDFORK = "cancun"
# anvil's well-known development mnemonic; its first account is the dev faucet.
DEV_MNEMONIC = "test test test test test test test test test test test junk"


def _platform_package() -> str:
    system = {"Linux": "linux", "Darwin": "darwin", "Windows": "win32"}.get(platform.system())
    machine = {"x86_64": "amd64", "AMD64": "amd64", "arm64": "arm64", "aarch64": "arm64"}.get(
        platform.machine()
    )
    if not system or not machine:
        raise DevNodeError(
            f"No anvil build is published for {platform.system()}/{platform.machine()}."
        )
    return f"anvil-{system}-{machine}"


def find_anvil(explicit: str | os.PathLike[str] | None = None) -> Path:
    """Locate the anvil binary: ``explicit`` (the ``anvil`` setting,
    ``GOVSHARE_ANVIL``), the npm package in a ``node_modules`` above the current
    directory or this source tree, or PATH."""
    if explicit:
        p = Path(explicit)
        if p.is_file() and os.access(p, os.X_OK):
            return p
        raise DevNodeError(f"{ENV_ANVIL} points to {p}, which is not an executable file.")
    exe = "anvil.exe" if platform.system() == "Windows" else "anvil"
    rel = Path("node_modules") / "@foundry-rs" / _platform_package() / "bin" / exe
    starts = [Path.cwd(), Path(__file__).resolve().parent]
    for start in starts:
        for d in [start, *start.parents]:
            cand = d / rel
            if cand.is_file():
                return cand
    found = shutil.which("anvil")
    if found:
        return Path(found)
    raise DevNodeError(
        "anvil was not found. Run `make setup` (npm ci installs @foundry-rs/anvil) "
        f"or set {ENV_ANVIL} to the anvil binary."
    )


_EPHEMERAL_RANGE = Path("/proc/sys/net/ipv4/ip_local_port_range")
_LOWEST_PICK = 10_000
_handed_out: set[int] = set()


def _pick_range() -> tuple[int, int] | None:
    """Ports to pick listening ports from: below the kernel's ephemeral range (or
    above it), where no outgoing connection is given a local port. None when the
    range cannot be read or leaves no room."""
    try:
        low, high = (int(v) for v in _EPHEMERAL_RANGE.read_text().split())
    except (OSError, ValueError):
        return None
    if low - 16 - _LOWEST_PICK >= 1_000:
        return _LOWEST_PICK, low - 16  # room for a block (dev up --base-port P uses P, P+1…)
    if 65_535 - 16 - high >= 1_000:
        return high + 1, 65_535 - 16
    return None


def port_bindable(host: str, port: int) -> bool:
    """Whether a server (which sets SO_REUSEADDR, as uvicorn, anvil and Kubo do)
    could bind ``host:port`` now: no listener and no connection holds it."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return False
        return True


def free_port(host: str = "127.0.0.1") -> int:
    """A port to start a server on. Chosen at random outside the kernel's
    ephemeral range: a port the kernel hands out (``bind(0)``) is also the one it
    gives the next outgoing connection, which can take it in the seconds before
    the server binds it. Never the same port twice in one process."""
    span = _pick_range()
    if span is not None:
        rng = random.SystemRandom()
        for _ in range(256):
            port = rng.randrange(*span)
            if port not in _handed_out and port_bindable(host, port):
                _handed_out.add(port)
                return port
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def rpc_call(url: str, method: str, params: list[Any] | None = None, timeout: float = 2.0) -> Any:
    """One raw JSON-RPC call (used for readiness probes, not by the chain layer)."""
    body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": method, "params": params or []})
    if not url.startswith(("http://", "https://")):
        raise DevNodeError(f"Not an HTTP JSON-RPC URL: {url}")
    headers = {"Content-Type": "application/json"}
    req = urllib.request.Request(url, data=body.encode(), headers=headers)  # noqa: S310
    with urllib.request.urlopen(req, timeout=timeout) as resp:  # noqa: S310
        data = json.loads(resp.read())
    if "error" in data:
        raise DevNodeError(f"{method} failed: {data['error'].get('message')}")
    return data["result"]


def wait_ready(url: str, timeout: float = 20.0, proc: subprocess.Popen[bytes] | None = None) -> int:
    """Wait until the node answers ``eth_chainId``; returns the chain id."""
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise DevNodeError(f"anvil exited with code {proc.returncode} while starting.")
        try:
            return int(rpc_call(url, "eth_chainId", timeout=1.0), 16)
        except (OSError, urllib.error.URLError, ValueError, DevNodeError) as exc:
            last = exc
            time.sleep(0.05)
    raise DevNodeError(f"The chain at {url} did not answer within {timeout:.0f}s ({last}).")


def _anvil_args(
    host: str,
    port: int,
    chain_id: int,
    state: Path | None,
    state_interval: int,
    cache: Path,
    anvil: Path | None = None,
) -> list[str]:
    args = [
        str(find_anvil(anvil)),
        "--host",
        host,
        "--port",
        str(port),
        "--chain-id",
        str(chain_id),
        "--hardfork",
        HARDFORK,
        "--mnemonic",
        DEV_MNEMONIC,
        "--accounts",
        "10",
        "--balance",
        "1000000",
        # Room for the three contracts and for many transactions per block.
        "--code-size-limit",
        str(0x10000),
        "--gas-limit",
        "60000000",
        # Historical states spill to disk here, not to ~/.foundry/anvil/tmp, where a
        # killed anvil leaves them behind for good (gigabytes after a long run).
        "--cache-path",
        str(cache),
    ]
    if state is not None:
        args += ["--state", str(state), "--state-interval", str(state_interval)]
    return args


class AnvilProcess:
    """An anvil child process owned by the caller (tests, benchmarks)."""

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int | None = None,
        chain_id: int = DEFAULT_CHAIN_ID,
        state: Path | None = None,
        state_interval: int = 1,
        log: Path | None = None,
        extra_args: list[str] | None = None,
        anvil: Path | None = None,
    ) -> None:
        self.host = host
        self.anvil = anvil
        self.port = port or free_port(host)
        self.chain_id = chain_id
        self.state = state
        self.state_interval = state_interval
        self.log = log
        # More anvil options, e.g. ["--base-fee", "0", "--gas-price", "0"] for free gas.
        self.extra_args = list(extra_args or [])
        self.proc: subprocess.Popen[bytes] | None = None
        self.cache: Path | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self, timeout: float = 20.0) -> AnvilProcess:
        self._drop_cache()
        self.cache = Path(tempfile.mkdtemp(prefix="govshare-anvil-"))
        args = _anvil_args(
            self.host,
            self.port,
            self.chain_id,
            self.state,
            self.state_interval,
            self.cache,
            self.anvil,
        )
        args += self.extra_args
        out = open(self.log, "ab") if self.log else subprocess.DEVNULL  # noqa: SIM115
        try:
            self.proc = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT)
        finally:
            if self.log:
                out.close()  # type: ignore[union-attr]
        wait_ready(self.url, timeout, self.proc)
        return self

    def stop(self, *, hard: bool = False, timeout: float = 10.0) -> None:
        """Stop anvil: SIGTERM (state is dumped) or, with ``hard``, SIGKILL."""
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGKILL if hard else signal.SIGTERM)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout)
        self._drop_cache()

    def _drop_cache(self) -> None:
        if self.cache is not None:
            shutil.rmtree(self.cache, ignore_errors=True)
            self.cache = None

    def __enter__(self) -> AnvilProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


@dataclass
class DevChainStatus:
    running: bool
    url: str
    pid: int | None
    chain_id: int | None
    block: int | None
    state_file: str

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


class DevChain:
    """The persistent dev chain of a govshare home (``govshare dev chain …``)."""

    def __init__(
        self,
        directory: Path,
        *,
        host: str = "127.0.0.1",
        port: int = DEFAULT_PORT,
        anvil: Path | None = None,
    ):
        self.dir = directory
        self.host = host
        self.port = port
        #: The anvil binary (the ``anvil`` setting), else found by :func:`find_anvil`.
        self.anvil = anvil
        cfg = self._read_config()
        if cfg:
            self.host = cfg.get("host", host)
            self.port = int(cfg.get("port", port))

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def pid_file(self) -> Path:
        return self.dir / "anvil.pid"

    @property
    def state_file(self) -> Path:
        return self.dir / "state.json"

    @property
    def cache_dir(self) -> Path:
        return self.dir / "cache"

    @property
    def log_file(self) -> Path:
        return self.dir / "anvil.log"

    def _read_config(self) -> dict[str, Any] | None:
        p = self.dir / "chain.json"
        if p.is_file():
            data: dict[str, Any] = json.loads(p.read_text())
            return data
        return None

    def _pid(self) -> int | None:
        try:
            pid = int(self.pid_file.read_text().strip())
        except (OSError, ValueError):
            return None
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return None
        except PermissionError:
            return pid
        # A recycled pid that is not anvil must not be mistaken for ours.
        with contextlib.suppress(OSError):
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
            if b"anvil" not in cmdline:
                return None
        return pid

    def status(self) -> DevChainStatus:
        pid = self._pid()
        chain_id = block = None
        if pid is not None:
            with contextlib.suppress(OSError, urllib.error.URLError, ValueError, DevNodeError):
                chain_id = int(rpc_call(self.url, "eth_chainId"), 16)
                block = int(rpc_call(self.url, "eth_blockNumber"), 16)
        return DevChainStatus(
            running=pid is not None and chain_id is not None,
            url=self.url,
            pid=pid,
            chain_id=chain_id,
            block=block,
            state_file=str(self.state_file),
        )

    def start(self, timeout: float = 30.0) -> DevChainStatus:
        """Start anvil in the background (idempotent: a running chain is left as is)."""
        if self._pid() is not None:
            return self.status()
        self.dir.mkdir(parents=True, exist_ok=True)
        if _port_in_use(self.host, self.port):
            raise DevNodeError(
                f"Port {self.port} on {self.host} is already in use by another program; "
                "stop it or choose another port with --port."
            )
        (self.dir / "chain.json").write_text(json.dumps({"host": self.host, "port": self.port}))
        # The cache only serves the running process; what a killed one left is garbage.
        shutil.rmtree(self.cache_dir, ignore_errors=True)
        args = _anvil_args(
            self.host, self.port, DEFAULT_CHAIN_ID, self.state_file, 1, self.cache_dir, self.anvil
        )
        with open(self.log_file, "ab") as log:
            proc = subprocess.Popen(
                args, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        self.pid_file.write_text(str(proc.pid))
        try:
            wait_ready(self.url, timeout, proc)
        except DevNodeError:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            self.pid_file.unlink(missing_ok=True)
            raise
        return self.status()

    def stop(self, timeout: float = 15.0) -> bool:
        """Stop anvil cleanly (its state is dumped on SIGTERM). False if it was not running."""
        pid = self._pid()
        if pid is None:
            self.pid_file.unlink(missing_ok=True)
            return False
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not _alive(pid):
                break
            time.sleep(0.05)
        else:
            os.kill(pid, signal.SIGKILL)
        self.pid_file.unlink(missing_ok=True)
        shutil.rmtree(self.cache_dir, ignore_errors=True)
        return True


def _alive(pid: int) -> bool:
    try:
        # Reap it if it is our child (tests start and stop in one process).
        with contextlib.suppress(ChildProcessError):
            done, _ = os.waitpid(pid, os.WNOHANG)
            if done == pid:
                return False
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def _port_in_use(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.settimeout(0.3)
        return s.connect_ex((host, port)) == 0
