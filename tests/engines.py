"""Real engines for the tests: a Kubo daemon, a private PostgreSQL cluster and a
``geth --dev`` node, each in its own temp directory on free loopback ports,
started and stopped by whoever holds it (the session fixtures in ``conftest.py``,
or a test that needs its own, e.g. to kill and restart it).

Where an engine cannot run here, constructing it raises :class:`EngineUnavailable`
with the reason (the fixtures turn that into a skip):

* Kubo and geth are built by ``make setup`` (``scripts/provision_engines.sh``)
  into ``.tools/bin``; a failed or impossible build leaves its reason in
  ``.tools/<name>.unavailable``.
* PostgreSQL's server comes from Debian's ``postgresql`` package
  (``/usr/lib/postgresql/<major>/bin``). initdb refuses to run as root, so as
  root every server command runs as the ``postgres`` user in a directory it owns.

Readiness is polled against a bounded deadline; nothing sleeps for a fixed time.
"""

from __future__ import annotations

import contextlib
import json
import os
import pwd
import re
import secrets
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, TypeVar

import httpx

from govshare.chain.devnode import free_port

REPO = Path(__file__).resolve().parent.parent
TOOLS = REPO / ".tools"
TOOLS_BIN = TOOLS / "bin"

# The pins live in scripts/provision_engines.sh; test_engines.py checks these agree.
KUBO_VERSION = "0.43.1"
GETH_VERSION = "1.17.10"

# geth's well-known developer key (cmd/utils.DeveloperKey): `geth --dev` funds it
# at genesis, so tests can sign raw transactions without reading geth's keystore.
GETH_DEV_KEY = "0xb71c71a67e1177ad4e901695e1b4b9ee17ae16c6668d313eac2f96dbcda3f291"
GETH_DEV_ADDRESS = "0x71562b71999873DB5b286dF957af199Ec94617F7"
GETH_DEV_CHAIN_ID = 1337

T = TypeVar("T")


class EngineUnavailable(Exception):
    """This engine cannot run on this machine; ``str(exc)`` says why and what to do."""


class EngineFailed(RuntimeError):
    """The engine was there but did not start or stop as it should."""


# --- helpers ------------------------------------------------------------------------------


def poll(
    probe: Callable[[], T | None],
    *,
    timeout: float,
    what: str,
    proc: subprocess.Popen[bytes] | None = None,
    log: Path | None = None,
) -> T:
    """Call ``probe`` until it returns something other than None, for at most ``timeout``
    seconds; fail early if ``proc`` exits. The pause between probes only spaces them out."""
    deadline = time.monotonic() + timeout
    pause = 0.02
    while True:
        if proc is not None and proc.poll() is not None:
            raise EngineFailed(
                f"{what}: the process exited with code {proc.returncode}{_tail(log)}"
            )
        result = probe()
        if result is not None:
            return result
        if time.monotonic() > deadline:
            raise EngineFailed(f"{what}: not ready within {timeout:.0f} s{_tail(log)}")
        time.sleep(pause)
        pause = min(pause * 2, 0.1)


def _tail(log: Path | None, lines: int = 15) -> str:
    if log is None:
        return ""
    try:
        text = log.read_text(errors="replace").splitlines()[-lines:]
    except OSError:
        return ""
    return "\n--- last lines of its log ---\n" + "\n".join(text) if text else ""


def _clashed(exc: EngineFailed) -> bool:
    return "address already in use" in str(exc).lower()


def _first_start(start: Callable[[], None], repick: Callable[[], None], tries: int = 3) -> None:
    """Start; if a chosen free port was taken before the engine bound it (another
    process won the race), choose new ports and try again, a bounded number of times."""
    for attempt in range(tries):
        try:
            start()
            return
        except EngineFailed as exc:
            if attempt == tries - 1 or not _clashed(exc):
                raise
            repick()


def _stop_process(proc: subprocess.Popen[bytes] | None, *, hard: bool, timeout: float) -> None:
    if proc is None or proc.poll() is not None:
        return
    proc.send_signal(signal.SIGKILL if hard else signal.SIGTERM)
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:  # it did not shut down cleanly: do not leak it
        proc.kill()
        proc.wait(timeout)


def tool(name: str, exe: str) -> Path:
    """The ``make setup``-built binary ``.tools/bin/<exe>``, or :class:`EngineUnavailable`."""
    path = TOOLS_BIN / exe
    if path.is_file() and os.access(path, os.X_OK):
        return path
    note = TOOLS / f"{name}.unavailable"
    if note.is_file():
        raise EngineUnavailable(f"{name}: {note.read_text().strip()}")
    raise EngineUnavailable(f"{name} is not built: run `make setup` (it builds .tools/bin/{exe})")


def _version_of(args: Sequence[str], pattern: str) -> str:
    out = subprocess.run(args, capture_output=True, text=True, timeout=60, check=False).stdout
    m = re.search(pattern, out, re.MULTILINE)
    return m.group(1) if m else "unknown"


def kubo_version() -> str:
    return _version_of([str(tool("kubo", "ipfs")), "version", "--number"], r"^(\S+)$")


def geth_version() -> str:
    return _version_of([str(tool("geth", "geth")), "version"], r"^Version: (\S+)$")


# --- Kubo ---------------------------------------------------------------------------------


class KuboDaemon:
    """One Kubo daemon with its own repo (``IPFS_PATH``) in a temp directory.

    Loopback-only API, gateway and swarm (TCP) ports; no bootstrap peers, no mDNS,
    ``Routing.Type`` ``none`` (no DHT, no delegated routers: peers are connected by
    hand, as a private swarm will be), no AutoConf/AutoTLS, telemetry off. The
    daemon is *online* (not ``--offline``): its swarm listens, so daemons can peer.
    Ports are chosen once, so :meth:`stop` then :meth:`start` comes back at the
    same addresses with the same repo (blocks and pins kept).

    ``config`` entries (dotted keys) are applied after these defaults, e.g.
    ``{"Import.CidVersion": 1}``; ``token`` sets ``API.Authorizations`` so that
    the RPC API wants ``Authorization: Bearer <token>``; ``swarm_key`` (the file's
    text) makes the node a private-network node.
    """

    def __init__(
        self,
        root: Path | None = None,
        *,
        token: str | None = None,
        swarm_key: str | None = None,
        config: dict[str, Any] | None = None,
    ) -> None:
        self.exe = tool("kubo", "ipfs")
        self._own_root = root is None
        self.root = Path(root) if root is not None else Path(tempfile.mkdtemp(prefix="gs-kubo-"))
        self.root.mkdir(parents=True, exist_ok=True)
        self.repo = self.root / "repo"
        self.log = self.root / "daemon.log"
        self.token = token
        self.swarm_key = swarm_key
        self.extra_config = dict(config or {})
        self.api_port = free_port()
        self.gateway_port = free_port()
        self.swarm_port = free_port()
        self.peer_id: str | None = None
        self.proc: subprocess.Popen[bytes] | None = None

    def __repr__(self) -> str:
        return f"KuboDaemon({self.api_url})"

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.api_port}"

    @property
    def gateway_url(self) -> str:
        return f"http://127.0.0.1:{self.gateway_port}"

    @property
    def swarm_addr(self) -> str:
        """The multiaddr other daemons dial (with ``/p2p/<peer id>`` once started)."""
        base = f"/ip4/127.0.0.1/tcp/{self.swarm_port}"
        return f"{base}/p2p/{self.peer_id}" if self.peer_id else base

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        env["IPFS_PATH"] = str(self.repo)
        env["IPFS_TELEMETRY"] = "off"
        return env

    def _run(self, *args: str, timeout: float = 60) -> str:
        done = subprocess.run(
            [str(self.exe), *args],
            env=self.env(),
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if done.returncode != 0:
            raise EngineFailed(f"ipfs {' '.join(args)} failed: {done.stderr.strip()[-2000:]}")
        return done.stdout

    def _init(self) -> None:
        # The `test` profile: loopback addresses, no bootstrap, no mDNS/AutoTLS/AutoConf.
        self._run("init", "--profile=test", "--empty-repo")
        if self.swarm_key is not None:
            path = self.repo / "swarm.key"
            path.write_text(self.swarm_key)
            path.chmod(0o600)
        self._write_config()

    def _write_config(self) -> None:
        path = self.repo / "config"
        cfg = json.loads(path.read_text())
        settings: dict[str, Any] = {
            "Addresses.API": f"/ip4/127.0.0.1/tcp/{self.api_port}",
            "Addresses.Gateway": f"/ip4/127.0.0.1/tcp/{self.gateway_port}",
            # TCP only: a private network (swarm.key) cannot run over QUIC/WebTransport.
            "Addresses.Swarm": [f"/ip4/127.0.0.1/tcp/{self.swarm_port}"],
            "Bootstrap": [],
            "Routing.Type": "none",
            "Routing.DelegatedRouters": [],
            "Discovery.MDNS.Enabled": False,
            "Swarm.DisableNatPortMap": True,
            # Nothing to announce to: there is no routing system.
            "Provide.Enabled": False,
            "Plugins.Plugins.telemetry.Config.Mode": "off",
        }
        if self.token is not None:
            settings["API.Authorizations"] = {
                "govshare": {"AuthSecret": f"bearer:{self.token}", "AllowedPaths": ["/api/v0"]}
            }
        settings.update(self.extra_config)
        for key, value in settings.items():
            *parents, last = key.split(".")
            node = cfg
            for part in parents:
                if node.get(part) is None:  # absent, or null in the generated config
                    node[part] = {}
                node = node[part]
            node[last] = value
        path.write_text(json.dumps(cfg, indent=2))

    def _probe_id(self) -> str | None:
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        try:
            r = httpx.post(f"{self.api_url}/api/v0/id", headers=headers, timeout=2.0)
        except httpx.HTTPError:
            return None
        if r.status_code != 200:
            return None
        return str(r.json()["ID"])

    def start(self, timeout: float = 60.0) -> KuboDaemon:
        if self.running:
            return self
        if self.peer_id is not None:  # a restart: same repo, same ports
            self._start(timeout)
            return self
        if not (self.repo / "config").exists():
            self._init()

        def repick() -> None:
            self.api_port, self.gateway_port, self.swarm_port = (
                free_port(),
                free_port(),
                free_port(),
            )
            self._write_config()

        _first_start(lambda: self._start(timeout), repick)
        return self

    def _start(self, timeout: float) -> None:
        with open(self.log, "ab") as out:
            self.proc = subprocess.Popen(
                # --migrate=false: a repo made by this very binary never needs one.
                [str(self.exe), "daemon", "--migrate=false"],
                env=self.env(),
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        try:
            self.peer_id = poll(
                self._probe_id,
                timeout=timeout,
                what=f"Kubo at {self.api_url}",
                proc=self.proc,
                log=self.log,
            )
        except EngineFailed:
            _stop_process(self.proc, hard=True, timeout=10)
            raise

    def stop(self, *, hard: bool = False, timeout: float = 30.0) -> None:
        """SIGTERM (Kubo closes its repo cleanly) or, with ``hard``, SIGKILL."""
        _stop_process(self.proc, hard=hard, timeout=timeout)
        self.proc = None

    def close(self) -> None:
        """Stop and remove the temp directory (if this object made it)."""
        self.stop()
        if self._own_root:
            shutil.rmtree(self.root, ignore_errors=True)

    def rpc(self, command: str, *, files: Any = None, **params: Any) -> httpx.Response:
        """``POST /api/v0/<command>`` with the token; raises on a non-200 answer."""
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        r = httpx.post(
            f"{self.api_url}/api/v0/{command}",
            params=params,
            files=files,
            headers=headers,
            timeout=120,
        )
        r.raise_for_status()
        return r

    def block_file(self, cid: Any) -> Path:
        """Where Kubo's flatfs keeps one block (default ``next-to-last/2`` sharding):
        ``blocks/<2 chars before the last>/<base32 multihash>.data``. Tests damage it."""
        import base64

        multihash = bytes(cid.multihash)
        key = base64.b32encode(multihash).decode().rstrip("=")
        return self.repo / "blocks" / key[-3:-1] / f"{key}.data"


# --- PostgreSQL ---------------------------------------------------------------------------


def find_pg_bin() -> Path:
    """The newest PostgreSQL server's bin directory (initdb, pg_ctl, createdb): the
    lookup ``dev up --database postgresql`` uses, its refusal as a skip reason."""
    from govshare.broker.devpostgres import find_pg_bin as find
    from govshare.errors import DevNodeError

    try:
        return find()
    except DevNodeError as exc:
        raise EngineUnavailable(str(exc)) from None


class PostgresCluster:
    """A private PostgreSQL cluster: initdb + pg_ctl in a temp directory, listening on
    127.0.0.1 at a free port (and a Unix socket in that directory only).

    Connections over TCP need the password (scram-sha-256); :meth:`url` gives a
    SQLAlchemy URL for the psycopg driver. ``fsync`` is off: the cluster lives for
    one test session, and a killed *server process* still loses nothing committed.
    """

    USER = "govshare"

    def __init__(self) -> None:
        self.bindir = find_pg_bin()
        self.run_as: str | None = None
        if os.geteuid() == 0:
            # initdb refuses root: run every server command as the postgres user.
            try:
                self._pw = pwd.getpwnam("postgres")
            except KeyError:
                raise EngineUnavailable(
                    "running as root and there is no `postgres` user to run initdb as"
                ) from None
            if shutil.which("runuser") is None:
                raise EngineUnavailable("running as root and `runuser` is missing")
            self.run_as = "postgres"
        # Not under pytest's basetemp: that is root-only (0700), the postgres user
        # could not reach its data directory there.
        self.root = Path(tempfile.mkdtemp(prefix="gs-pg-"))
        if self.run_as is not None:
            os.chown(self.root, self._pw.pw_uid, self._pw.pw_gid)
        self.data = self.root / "data"
        self.log = self.root / "server.log"
        self.port = free_port()
        self.password = secrets.token_hex(16)
        self.started = False
        self.ever_started = False

    def __repr__(self) -> str:
        return f"PostgresCluster(127.0.0.1:{self.port})"

    def _cmd(self, exe: str, *args: str) -> list[str]:
        cmd = [str(self.bindir / exe), *args]
        return ["runuser", "-u", self.run_as, "--", *cmd] if self.run_as else cmd

    def _run(self, exe: str, *args: str, timeout: float = 120) -> str:
        done = subprocess.run(
            self._cmd(exe, *args),
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
            cwd=self.root,  # the postgres user may not be able to read our cwd
        )
        if done.returncode != 0:
            raise EngineFailed(
                f"{exe} failed ({done.returncode}): {(done.stderr or done.stdout).strip()[-2000:]}"
                f"{_tail(self.log)}"
            )
        return done.stdout

    def start(self) -> PostgresCluster:
        if self.started:
            return self
        fresh = not self.data.exists()
        if fresh:
            pwfile = self.root / "pwfile"
            pwfile.write_text(self.password + "\n")
            pwfile.chmod(0o600)
            if self.run_as is not None:
                os.chown(pwfile, self._pw.pw_uid, self._pw.pw_gid)
            try:
                self._run(
                    "initdb",
                    "-D",
                    str(self.data),
                    "-U",
                    self.USER,
                    f"--pwfile={pwfile}",
                    "--auth-local=trust",  # the socket is in our own 0700 directory
                    "--auth-host=scram-sha-256",
                    "--encoding=UTF8",
                    "--locale=C",
                    "--no-sync",  # a throwaway cluster: skip initdb's fsyncs
                    "--no-instructions",
                )
            finally:
                pwfile.unlink()
        if self.ever_started:  # a restart: same data, same port
            self._pg_start()
        else:
            _first_start(self._pg_start, self._repick)
        self.started = self.ever_started = True
        if fresh:
            self.create_database(self.USER)
        return self

    def _repick(self) -> None:
        self.port = free_port()

    def _pg_start(self) -> None:
        options = " ".join(
            [
                "-c listen_addresses=127.0.0.1",
                f"-c port={self.port}",
                f"-c unix_socket_directories={self.root}",
                "-c fsync=off",
                "-c full_page_writes=off",
            ]
        )
        # -w: pg_ctl itself waits (bounded by -t) until the server accepts connections.
        self._run(
            "pg_ctl", "-D", str(self.data), "-l", str(self.log), "-o", options,
            "-w", "-t", "60", "start",
        )  # fmt: skip

    def create_database(self, name: str) -> str:
        """Create database ``name`` (over the private socket); returns its URL."""
        if not re.fullmatch(r"[a-z_][a-z0-9_]{0,62}", name):
            raise ValueError(f"not a plain database name: {name!r}")
        self._run("createdb", "-h", str(self.root), "-p", str(self.port), "-U", self.USER, name)
        return self.url(name)

    def url(self, database: str = USER) -> str:
        return f"postgresql+psycopg://{self.USER}:{self.password}@127.0.0.1:{self.port}/{database}"

    def stop(self, *, mode: str = "fast") -> None:
        """``pg_ctl stop`` (``fast``: roll back open transactions; ``immediate``: a crash)."""
        if not self.started:
            return
        self._run("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "-t", "60", "stop")
        self.started = False

    def close(self) -> None:
        try:
            self.stop()
        finally:
            shutil.rmtree(self.root, ignore_errors=True)


# --- geth -----------------------------------------------------------------------------------


class GethDevNode:
    """``geth --dev`` with a fixed block period (1 s by default), HTTP JSON-RPC on
    127.0.0.1 at a free port; no peers, no discovery, no IPC; its own datadir.

    The dev genesis funds :data:`GETH_DEV_ADDRESS` (key :data:`GETH_DEV_KEY`) and
    enables every fork up to the newest at time 0 (cancun included, see
    ``test_engines.py``). Note that Osaka's EIP-7825 caps one transaction's gas at
    2**24 whatever the block gas limit.
    """

    def __init__(self, *, period: int = 1, gas_limit: int = 60_000_000) -> None:
        self.exe = tool("geth", "geth")
        self.period = period
        self.gas_limit = gas_limit
        self.root = Path(tempfile.mkdtemp(prefix="gs-geth-"))
        self.log = self.root / "geth.log"
        self.port = free_port()
        self.authrpc_port = free_port()  # geth opens it even in dev mode; not 8551
        self.proc: subprocess.Popen[bytes] | None = None

    def __repr__(self) -> str:
        return f"GethDevNode({self.url})"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def rpc(self, method: str, *params: Any) -> Any:
        r = httpx.post(
            self.url,
            json={"jsonrpc": "2.0", "id": 1, "method": method, "params": list(params)},
            timeout=10,
        )
        r.raise_for_status()
        body = r.json()
        if "error" in body:
            raise EngineFailed(f"{method}: {body['error']}")
        return body["result"]

    def _probe(self) -> int | None:
        try:
            return int(self.rpc("eth_chainId"), 16)
        except (httpx.HTTPError, EngineFailed, ValueError):
            return None

    def start(self, timeout: float = 60.0) -> GethDevNode:
        def repick() -> None:
            self.port, self.authrpc_port = free_port(), free_port()

        _first_start(lambda: self._start(timeout), repick)
        return self

    def _start(self, timeout: float) -> None:
        args = [
            str(self.exe),
            "--dev",
            "--dev.period", str(self.period),
            "--dev.gaslimit", str(self.gas_limit),
            "--datadir", str(self.root / "data"),
            "--http",
            "--http.addr", "127.0.0.1",
            "--http.port", str(self.port),
            "--http.api", "eth,net,web3,txpool,debug",
            "--authrpc.addr", "127.0.0.1",
            "--authrpc.port", str(self.authrpc_port),
            "--port", "0",
            "--nodiscover",
            "--maxpeers", "0",
            "--nat", "none",
            "--ipcdisable",
            "--verbosity", "2",
        ]  # fmt: skip
        with open(self.log, "ab") as out:
            self.proc = subprocess.Popen(
                args, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
            )
        try:
            poll(
                self._probe,
                timeout=timeout,
                what=f"geth at {self.url}",
                proc=self.proc,
                log=self.log,
            )
        except EngineFailed:
            _stop_process(self.proc, hard=True, timeout=10)
            raise

    def stop(self, *, hard: bool = False, timeout: float = 30.0) -> None:
        _stop_process(self.proc, hard=hard, timeout=timeout)
        self.proc = None

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)


@contextlib.contextmanager
def running(engine: T) -> Iterator[T]:
    """``with running(KuboDaemon()) as kubo:`` — started here, closed on the way out."""
    try:
        engine.start()  # type: ignore[attr-defined]
        yield engine
    finally:
        engine.close()  # type: ignore[attr-defined]
