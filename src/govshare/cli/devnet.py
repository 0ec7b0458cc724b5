"""The one-machine consortium behind ``govshare dev up|down|status``.

``up`` brings a govshare home to a running consortium, doing only what is not
done yet, so running it again resumes a home with its data:

1. the local chain (anvil, its ledger kept under ``HOME/chain``);
2. a profile per department (keys; endpoint ``http://127.0.0.1:PORT``);
3. the contracts, deployed once with those departments as founders and a
   majority threshold; then each department's demo catalog category;
4. a clerk and an administrator user per department, their tokens saved for
   the CLI (``HOME/depts/CODE/api.token`` and ``api-admin.token``, 0600);
5. one ``govshare serve`` process per department, detached, on its
   endpoint's port, with its own database and store under ``HOME/depts/CODE``;
   on a resumed home that includes each department voted in since (a profile in
   this home, an active member on chain), and each broker takes the home's upload
   limit (``dev up --max-upload``, kept for the next ``dev up``).

The broker password reaches the broker processes through their environment
(``GOVSHARE_PASSWORD``), never their command line. Under ``HOME/dev/``:
``devnet.json`` (the departments), ``CODE.pid`` and ``logs/CODE.log``.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlparse

from govshare.chain.devnode import DevChain, DevChainStatus, port_bindable
from govshare.cli._client import ADMIN_TOKEN_FILE, TOKEN_FILE, save_token, token_path
from govshare.cli.init_cmd import FIRST_BROKER_PORT
from govshare.errors import ConfigError, DeploymentStale, GovShareError, NotFound
from govshare.home import (
    chain_dir,
    deployment_path,
    dept_dir,
    dev_dir,
    dev_state_path,
    ensure_dir,
)
from govshare.profile import (
    CONFIG,
    Profile,
    create_profile,
    list_codes,
    load_profile,
    normalise_code,
)
from govshare.util import format_size

# httpx and the settings (pydantic) are imported when needed: `dev status` with no
# broker running makes no HTTP request.
if TYPE_CHECKING:
    import httpx

    from govshare.settings import Settings

DEFAULT_DEPARTMENTS = ("TAX", "MARKET", "COURT")
NAMES = {
    "TAX": "Tax Bureau",
    "MARKET": "Market Regulator",
    "COURT": "People's Court",
    "CUSTOMS": "Customs Office",
}
#: One demo catalog category per department, so clerks can publish at once.
CATEGORIES = {
    "TAX": ("tax-clearance", "Tax clearance certificates of enterprises"),
    "MARKET": ("business-licence", "Business licences and their status"),
    "COURT": ("court-judgment", "Court judgments"),
    "CUSTOMS": ("customs-declaration", "Customs declarations"),
}
# Runs `govshare serve` with this interpreter (no console script needed on PATH).
_BOOT = "import sys; from govshare.cli.main import main; sys.exit(main())"
# Configuration a broker of this home must not inherit from the caller's shell
# (the retired names too: the broker would only warn about them).
_NOT_INHERITED = (
    "GOVSHARE_DEPT",
    "GOVSHARE_STORE",
    "GOVSHARE_STORAGE",
    "GOVSHARE_CHAIN_URL",
    "GOVSHARE_RPC",
    "GOVSHARE_DEPLOYMENT_FILE",
    "GOVSHARE_SECRETS_DIR",
    "GOVSHARE_PASSWORD_FILE",
    "GOVSHARE_ADMIN_PASSWORD",
    "GOVSHARE_TOKEN",
    "GOVSHARE_BROKER_URL",
)

Echo = Callable[[str], None]


def category_for(code: str) -> tuple[str, str]:
    return CATEGORIES.get(code, (f"{code.lower().replace('_', '-')}-record", f"Records of {code}"))


@dataclass
class BrokerStatus:
    code: str
    url: str
    pid: int | None
    running: bool
    ready: bool | None  # None: not asked (not running)
    log: str
    token_file: str

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass
class DevNetStatus:
    home: str
    chain: DevChainStatus
    deployed: bool
    departments: list[str]
    brokers: list[BrokerStatus] = field(default_factory=list)
    resumed: bool = False
    threshold: int | None = None
    #: Where the brokers store records: ``local`` folders, or ``kubo`` nodes.
    store: str = "local"
    #: The Kubo nodes (``--store kubo``): department -> (RPC URL, running).
    kubo: dict[str, tuple[str, bool]] = field(default_factory=dict)
    #: Where the brokers keep their databases: ``sqlite`` files, or ``postgresql``.
    database: str = "sqlite"
    postgres_running: bool = False
    #: The largest record each broker accepts for publishing (bytes).
    max_upload: int = 256 * 1024**2
    #: Departments with a profile in this home that are not (yet) active members:
    #: their brokers are not started (code -> why).
    not_started: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "home": self.home,
            "chain": self.chain.to_dict(),
            "deployed": self.deployed,
            "departments": self.departments,
            "threshold": self.threshold,
            "resumed": self.resumed,
            "store": self.store,
            "kubo": {c: {"url": u, "running": r} for c, (u, r) in self.kubo.items()},
            "database": self.database,
            "postgres_running": self.postgres_running,
            "max_upload": self.max_upload,
            "not_started": self.not_started,
            "brokers": [b.to_dict() for b in self.brokers],
        }


def _port_of(endpoint: str) -> int:
    port = urlparse(endpoint).port
    if port is None:
        raise ConfigError(f"The endpoint {endpoint} names no port; dev up runs brokers locally.")
    return port


def _port_in_use(port: int) -> bool:
    """Whether something holds 127.0.0.1:PORT: a listener, or a connection the
    kernel gave that local port (a connect probe misses the latter)."""
    return not port_bindable("127.0.0.1", port)


def _alive(pid: int) -> bool:
    try:
        with contextlib.suppress(ChildProcessError):  # reap it if it is our child
            done, _ = os.waitpid(pid, os.WNOHANG)
            if done == pid:
                return False
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class DevNet:
    """The local consortium of one govshare home."""

    def __init__(self, home: Path, settings: Settings | None = None) -> None:
        self.home = home
        self.dir = dev_dir(home)
        #: The caller's settings (the anvil binary, the subject key); defaults if None.
        if settings is None:
            from govshare.settings import Settings

            settings = Settings.defaults()
        self.settings = settings

    # -- state ---------------------------------------------------------------------------

    @property
    def state_file(self) -> Path:
        return dev_state_path(self.home)

    def _state(self) -> dict[str, Any]:
        try:
            data: dict[str, Any] = json.loads(self.state_file.read_text())
            return data
        except FileNotFoundError:
            return {}
        except ValueError:
            raise ConfigError(f"{self.state_file} is damaged; remove it and run dev up.") from None

    def _save_state(self, data: dict[str, Any]) -> None:
        ensure_dir(self.dir)
        tmp = self.state_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
        os.replace(tmp, self.state_file)

    def departments(self) -> list[str]:
        return list(self._state().get("departments", []))

    def pid_file(self, code: str) -> Path:
        return self.dir / f"{code}.pid"

    def log_file(self, code: str) -> Path:
        return self.dir / "logs" / f"{code}.log"

    def chain(self) -> DevChain:
        return DevChain(chain_dir(self.home), anvil=self.settings.anvil)

    # -- brokers -------------------------------------------------------------------------

    def broker_pid(self, code: str) -> int | None:
        """The pid of CODE's broker if it runs (and is ours, not a recycled pid)."""
        try:
            pid = int(self.pid_file(code).read_text().strip())
        except (OSError, ValueError):
            return None
        if not _alive(pid):
            return None
        with contextlib.suppress(OSError):
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
            if b"serve\0--dept\0" + code.encode() + b"\0" not in cmdline:
                return None
        return pid

    def _start_broker(
        self,
        prof: Profile,
        password: str,
        store_url: str | None = None,
        max_upload: int | None = None,
    ) -> subprocess.Popen[bytes]:
        from govshare.broker.devpostgres import dev_database_url

        port = _port_of(prof.endpoint)
        if _port_in_use(port):
            raise ConfigError(
                f"Port {port} ({prof.code}'s broker endpoint) is in use by another program; "
                "stop it, or use another home (--home) whose departments use other ports "
                "(dev up --base-port)."
            )
        # the child reads its own settings: pass the environment on, minus this home's
        env = {k: v for k, v in os.environ.items() if k not in _NOT_INHERITED}
        env["GOVSHARE_PASSWORD"] = password  # the environment, never the command line
        env["GOVSHARE_HOME"] = str(self.home)
        if store_url:
            env["GOVSHARE_STORE"] = store_url  # its department's Kubo node
        if max_upload:
            env["GOVSHARE_MAX_UPLOAD"] = str(max_upload)  # the home's limit, not the shell's
        db_url = dev_database_url(self.home, prof.code)
        if db_url:
            env["GOVSHARE_DATABASE_URL"] = db_url  # its database in the home's cluster
        args = [sys.executable, "-c", _BOOT, "serve", "--dept", prof.code, "--home", str(self.home)]
        log = self.log_file(prof.code)
        ensure_dir(log.parent)
        with open(log, "ab") as out:
            proc = subprocess.Popen(
                args,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # detached: Ctrl-C in this terminal leaves it running
                cwd=self.home,
            )
        self.pid_file(prof.code).write_text(str(proc.pid))
        return proc

    def _wait_ready(
        self, profiles: Sequence[Profile], procs: dict[str, subprocess.Popen[bytes]], timeout: float
    ) -> None:
        """Until each broker answers /healthz. A broker's own process tells whether it
        exited (its /proc cmdline is its parent's until it has exec'd: not a test).
        One HTTP client for every probe: a client per probe builds a TLS context each
        time (about 65 ms of CPU), taken from the brokers starting on the same cores."""
        deadline = time.monotonic() + timeout
        import httpx

        pending = {p.code: p for p in profiles}
        with httpx.Client(timeout=1.0) as client:
            self._poll_ready(client, pending, procs, deadline, timeout)

    def _poll_ready(
        self,
        client: httpx.Client,
        pending: dict[str, Profile],
        procs: dict[str, subprocess.Popen[bytes]],
        deadline: float,
        timeout: float,
    ) -> None:
        import httpx

        while pending:
            for code, prof in list(pending.items()):
                if procs[code].poll() is not None:
                    raise ConfigError(
                        f"{code}'s broker exited while starting. The end of its log "
                        f"({self.log_file(code)}):\n{_tail(self.log_file(code))}"
                    )
                with contextlib.suppress(httpx.HTTPError):
                    if client.get(prof.endpoint + "/healthz").status_code == 200:
                        del pending[code]
            if not pending:
                return
            if time.monotonic() > deadline:
                raise ConfigError(
                    f"The brokers of {', '.join(pending)} did not answer within {timeout:.0f}s; "
                    f"see their logs under {self.dir / 'logs'}."
                )
            time.sleep(0.1)

    def stop_brokers(self, timeout: float = 20.0) -> list[str]:
        """SIGTERM every broker of this home, SIGKILL what is left after ``timeout``."""
        stopping: dict[str, int] = {}
        for pid_file in sorted(self.dir.glob("*.pid")) if self.dir.is_dir() else []:
            code = pid_file.stem
            pid = self.broker_pid(code)
            if pid is not None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGTERM)
                stopping[code] = pid
            else:
                pid_file.unlink(missing_ok=True)
        deadline = time.monotonic() + timeout
        while any(_alive(p) for p in stopping.values()) and time.monotonic() < deadline:
            time.sleep(0.1)
        for pid in stopping.values():
            if _alive(pid):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
        for code in stopping:
            self.pid_file(code).unlink(missing_ok=True)
        return sorted(stopping)

    # -- up / down / status --------------------------------------------------------------

    def up(  # noqa: C901 — the resumable bring-up, in its numbered steps
        self,
        codes: Sequence[str] | None,
        *,
        password: str,
        admin_password: str | None = None,
        chain_port: int | None = None,
        base_port: int = FIRST_BROKER_PORT,
        scrypt_n: int | None = None,
        wait: float = 90.0,
        store: str | None = None,
        database: str | None = None,
        max_upload: int | None = None,
        echo: Echo = lambda _s: None,
    ) -> DevNetStatus:
        from govshare.broker.subjects import ensure_subject_key
        from govshare.chain.ledger import Ledger

        ensure_dir(self.home)
        state = self._state()
        deployed = deployment_path(self.home).is_file()
        wanted = list(codes or state.get("departments") or DEFAULT_DEPARTMENTS)
        wanted = [normalise_code(c) for c in wanted]
        if len(set(wanted)) != len(wanted):
            raise ConfigError("A department is listed twice in --departments.")
        kind = str(state.get("store") or store or "local")
        if store and store != kind:
            raise ConfigError(
                f"This home's consortium keeps its records in {kind} stores; `govshare dev "
                f"down` and use a new home (--home) for {store} stores."
            )
        dbkind = str(state.get("database") or database or "sqlite")
        if database and database != dbkind:
            raise ConfigError(
                f"This home's brokers keep their databases in {dbkind}; `govshare dev down` "
                f"and use a new home (--home) for {database}."
            )

        limit = self._upload_limit(state, max_upload)
        joined: list[str] = []
        not_started: dict[str, str] = {}

        # 1. the chain
        dc = self.chain()
        if chain_port and dc.port != chain_port:
            if dc.status().running:
                raise ConfigError(
                    f"This home's dev chain already runs on port {dc.port}; "
                    "`govshare dev down` first to move it."
                )
            dc.port = chain_port
        was_running = dc.status().running
        if not was_running and _port_in_use(dc.port):
            raise ConfigError(
                f"Port {dc.port} is in use by another program; give this home's chain "
                "another one with --chain-port."
            )
        st = dc.start()
        echo(
            f"Chain    {st.url} (chain id {st.chain_id}, block {st.block})"
            + (" — already running" if was_running else "")
        )

        # 2. profiles
        profiles: dict[str, Profile] = {}
        taken = {_port_of(load_profile(self.home, c).endpoint) for c in list_codes(self.home)}
        next_port = base_port
        for code in wanted:
            if (dept_dir(self.home, code) / CONFIG).is_file():
                profiles[code] = load_profile(self.home, code)
                continue
            if deployed:
                raise ConfigError(
                    f"{code} has no profile in this home and the consortium is deployed: a new "
                    f"department joins by a vote (`govshare init {code}`, then "
                    f"`govshare dept propose add {code} --as MEMBER`)."
                )
            while next_port in taken or _port_in_use(next_port):
                next_port += 1
            taken.add(next_port)
            kw: dict[str, Any] = {"scrypt_n": scrypt_n} if scrypt_n else {}
            prof = create_profile(
                self.home,
                code,
                NAMES.get(code, f"Department {code}"),
                endpoint=f"http://127.0.0.1:{next_port}",
                broker_password=password,
                admin_password=admin_password or password,
                **kw,
            )
            ensure_subject_key(
                self.home,
                prof.dir,
                key=self.settings.secret("subject_key"),
                key_file=self.settings.subject_key_file,
            )
            profiles[code] = prof
            echo(f"Profile  {code}: broker {prof.broker_address}, endpoint {prof.endpoint}")

        # 3. the contracts, once
        if deployed:
            try:
                ledger = Ledger.from_deployment(deployment_path(self.home))
            except DeploymentStale:
                raise ConfigError(
                    "The dev chain no longer holds this home's consortium (was its ledger "
                    f"file {dc.state_file} removed?). Start over with a new home."
                ) from None
            members = ledger.registry.active_departments()
            if codes is None:  # resuming the home: its members, with those voted in since
                joined, not_started = self._resume_set(wanted, members)
                wanted = [c for c in wanted if c not in not_started]
                for code in joined:
                    profiles[code] = load_profile(self.home, code)
                    wanted.append(code)
            missing = [c for c in wanted if c not in members]
            if missing:
                raise ConfigError(
                    f"{', '.join(missing)} {'is' if len(missing) == 1 else 'are'} not an active "
                    f"member of this home's consortium (members: {', '.join(members)}); a "
                    f"department joins by a vote (`govshare dept propose add CODE --as MEMBER`)."
                )
            threshold = int(state.get("threshold") or ledger.registry.threshold())
            echo(f"Ledger   deployed already; members {', '.join(members)}")
            for code in joined:
                echo(f"Joined   {code}: voted in since the last dev up; its broker starts too")
            for code, why in not_started.items():
                echo(f"Skipped  {code} {why}")
        else:
            ledger, threshold = self._deploy(dc, [profiles[c] for c in wanted])
            echo(
                f"Ledger   deployed: founders {', '.join(wanted)}, "
                f"threshold {threshold} of {len(wanted)}"
            )
        self._declare_categories(ledger, [profiles[c] for c in wanted], admin_password or password)
        known = list(dict.fromkeys([*state.get("departments", []), *wanted]))
        nodes = self._kubo_up(known, state.get("kubo") or {}, echo) if kind == "kubo" else {}
        if dbkind == "postgresql":
            self._postgres_up(known, echo)
        self._save_state(
            {
                "format": "govshare-devnet/1",
                "departments": known,
                "threshold": threshold,
                "created": state.get("created") or time.time(),
                "store": kind,
                "database": dbkind,
                "max_upload": limit,
                **({"kubo": nodes} if nodes else {}),
            }
        )

        # 4. users and their tokens
        for code in wanted:
            self._ensure_users(code)

        # 5. one broker process per department
        starting = [profiles[c] for c in wanted if self.broker_pid(c) is None]
        if starting:
            # A wrong password would only show in the brokers' logs: check it here.
            starting[0].unlock_broker(password)
        procs = {
            prof.code: self._start_broker(prof, password, self._store_url(prof.code), limit)
            for prof in starting
        }
        if starting:
            echo(f"Brokers  starting {', '.join(p.code for p in starting)} ...")
            self._wait_ready(starting, procs, wait)
        out = self.status(wanted)
        out.resumed = deployed
        out.not_started = not_started
        return out

    def _upload_limit(self, state: dict[str, Any], asked: int | None) -> int:
        """The brokers' upload limit: ``--max-upload``, else GOVSHARE_MAX_UPLOAD when
        set, else the home's (kept from the last dev up), else the default. Brokers
        already running keep the limit they started with: a new one needs a restart."""
        kept = state.get("max_upload")
        if asked is None and "max_upload" in self.settings.model_fields_set:
            asked = self.settings.max_upload
        limit = int(asked or kept or self.settings.max_upload)
        running = [c for c in state.get("departments", []) if self.broker_pid(c) is not None]
        if running and limit != int(kept or self.settings.max_upload):
            raise ConfigError(
                f"The brokers of {', '.join(running)} run with an upload limit of "
                f"{format_size(int(kept or self.settings.max_upload))}: `govshare dev down`, "
                f"then `govshare dev up --max-upload {format_size(limit)}`."
            )
        return limit

    def _resume_set(
        self, wanted: Sequence[str], members: Sequence[str]
    ) -> tuple[list[str], dict[str, str]]:
        """On a resumed home: the departments with a profile here that ``wanted``
        misses and that are active members (voted in since: their brokers start too),
        and every department of the home whose broker is not started, with why."""
        joined: list[str] = []
        not_started: dict[str, str] = {}
        for code in dict.fromkeys([*wanted, *list_codes(self.home)]):
            if code not in members:
                not_started[code] = (
                    "(its broker is not started): it has a profile in this home but is not an "
                    "active member; a vote admits it "
                    f"(`govshare dept propose add {code} --as MEMBER`)."
                )
                continue
            if code in wanted:
                continue
            host = urlparse(load_profile(self.home, code).endpoint).hostname
            if host not in ("127.0.0.1", "localhost", "::1"):
                not_started[code] = (
                    f"(its broker is not started): its endpoint is on {host}, not this machine."
                )
            else:
                joined.append(code)
        return joined, not_started

    def _deploy(self, dc: DevChain, profiles: list[Profile]) -> tuple[Any, int]:
        from govshare.chain.connection import Connection
        from govshare.chain.contracts import DepartmentInit
        from govshare.chain.deploy import deploy
        from govshare.chain.devfund import faucet, fund_if_dev
        from govshare.chain.ledger import Ledger
        from govshare.chain.tx import Sender

        conn = Connection(dc.url)
        inits = [
            DepartmentInit(
                code=p.code,
                name=p.name,
                broker=p.broker_address,
                admins=(p.admin_address,),
                encryption_key=p.hpke_public_key,
                endpoint=p.endpoint,
            )
            for p in profiles
        ]
        fund_if_dev(
            conn, Sender(conn), [a for p in profiles for a in (p.broker_address, p.admin_address)]
        )
        threshold = len(profiles) // 2 + 1
        path = deployment_path(self.home)
        deploy(conn, faucet(), inits, threshold, path=path)
        os.chmod(path, 0o644)
        return Ledger.from_deployment(path), threshold

    def _declare_categories(self, ledger: Any, profiles: list[Profile], admin_pw: str) -> None:
        from govshare.broker import governance

        for prof in profiles:
            if any(c.active for c in ledger.records.categories(prof.code)):
                continue
            category, description = category_for(prof.code)
            admin = prof.unlock_admin(admin_pw)
            governance.declare_category(ledger, admin, prof.code, category, description)

    def _ensure_users(self, code: str) -> None:
        from govshare.broker.db import Database
        from govshare.broker.users import Users

        db = Database.for_department(self.home, code)
        try:
            users = Users(db)
            for role, file_name in (("clerk", TOKEN_FILE), ("admin", ADMIN_TOKEN_FILE)):
                name = f"{code.lower().replace('_', '-')}-{role}"
                try:
                    users.get(name)
                except NotFound:
                    _, issued = users.add(name, role, code, label="govshare dev up")
                    save_token(self.home, code, issued.token, file_name)
                    continue
                if not token_path(self.home, code, file_name).is_file():
                    issued = users.issue_token(name, label="govshare dev up")
                    save_token(self.home, code, issued.token, file_name)
        finally:
            db.close()

    def down(self) -> dict[str, Any]:
        stopped = self.stop_brokers()
        nodes = [code for code, node in self.kubo_nodes().items() if node.stop()]
        pg = self._postgres()
        pg_stopped = pg.stop() if pg is not None else False
        chain_stopped = self.chain().stop()
        return {
            "brokers_stopped": stopped,
            "kubo_stopped": nodes,
            "postgres_stopped": pg_stopped,
            "chain_stopped": chain_stopped,
        }

    # -- PostgreSQL (dev up --database postgresql) ------------------------------------------

    def _postgres(self) -> Any:
        """This home's cluster, or None when its brokers use SQLite files."""
        from govshare.broker.devpostgres import DevPostgres

        if self._state().get("database") != "postgresql":
            return None
        return DevPostgres(self.home)

    def _postgres_up(self, codes: Sequence[str], echo: Echo) -> None:
        from govshare.broker.devpostgres import DevPostgres
        from govshare.chain.devnode import free_port

        pg = DevPostgres(self.home)
        was = pg.running()
        pg.up(list(codes), free_port())
        echo(f"Postgres {pg.url(codes[0]).rsplit('@', 1)[1].rsplit('/', 1)[0]}"
             + (" — already running" if was else "") + ", a database per department")  # fmt: skip

    # -- Kubo nodes (dev up --store kubo) ---------------------------------------------------

    def kubo_nodes(self) -> dict[str, Any]:
        """This home's Kubo nodes, by department (none with local stores)."""
        ports = self._state().get("kubo") or {}
        if not ports:
            return {}
        from govshare.storage.devkubo import DevKubo, find_kubo  # (imports httpx)

        exe = find_kubo(self.settings.kubo)
        return {
            code: DevKubo(
                self.dir / "kubo" / code.lower(), exe, api_port=p["api"], swarm_port=p["swarm"]
            )
            for code, p in ports.items()
        }

    def _store_url(self, code: str) -> str | None:
        node = self.kubo_nodes().get(code)
        return node.store_url if node is not None else None

    def _kubo_up(
        self, codes: Sequence[str], ports: dict[str, dict[str, int]], echo: Echo
    ) -> dict[str, dict[str, int]]:
        """One Kubo node per department in one private swarm: made once, started
        unless running; returns every node's ports (kept in the dev state)."""
        from govshare.chain.devnode import free_port
        from govshare.consortium.kubo import format_swarm_key, generate_swarm_key
        from govshare.storage.devkubo import DevKubo, find_kubo

        exe = find_kubo(self.settings.kubo)
        base = ensure_dir(self.dir / "kubo")
        os.chmod(base, 0o700)
        key_file = base / "swarm.key"
        if not key_file.is_file():
            key_file.write_text(format_swarm_key(generate_swarm_key()))
            key_file.chmod(0o600)
        key = key_file.read_text()
        ports = {c: dict(p) for c, p in ports.items()}
        for code in codes:
            if code not in ports:
                ports[code] = {"api": free_port(), "swarm": free_port()}
        nodes = {
            c: DevKubo(base / c.lower(), exe, api_port=p["api"], swarm_port=p["swarm"])
            for c, p in ports.items()
        }
        for node in nodes.values():
            node.init(key)
        ids = {c: n.peer_id for c, n in nodes.items()}
        for code, node in nodes.items():
            node.configure([(ids[o], ports[o]["swarm"]) for o in nodes if o != code])
        for code, node in nodes.items():
            was = node.pid() is not None
            node.start()
            echo(f"Kubo     {code}: {node.api_url}" + (" — already running" if was else ""))
        return ports

    def _broker_status(self, answers: Callable[[str], bool], code: str) -> BrokerStatus | None:
        try:
            endpoint = load_profile(self.home, code).endpoint
        except GovShareError:
            return None
        pid = self.broker_pid(code)
        ready = answers(endpoint + "/readyz") if pid is not None else None
        return BrokerStatus(
            code=code,
            url=endpoint,
            pid=pid,
            running=pid is not None,
            ready=ready,
            log=str(self.log_file(code)),
            token_file=str(token_path(self.home, code)),
        )

    def status(self, codes: Sequence[str] | None = None) -> DevNetStatus:
        known = list(codes or self.departments())
        brokers = []
        with _Prober(timeout=3.0) as answers:
            for code in known:
                b = self._broker_status(answers, code)
                if b is not None:
                    brokers.append(b)
        state = self._state()
        return DevNetStatus(
            home=str(self.home),
            chain=self.chain().status(),
            deployed=deployment_path(self.home).is_file(),
            departments=known,
            brokers=brokers,
            threshold=state.get("threshold"),
            store=str(state.get("store") or "local"),
            kubo={c: (n.api_url, n.pid() is not None) for c, n in self.kubo_nodes().items()},
            database=str(state.get("database") or "sqlite"),
            max_upload=int(state.get("max_upload") or self.settings.max_upload),
            postgres_running=bool(pg.running()) if (pg := self._postgres()) is not None else False,
        )


class _Prober:
    """Whether a URL answers 200, with one HTTP client made at the first probe:
    with no broker running, `dev status` imports no httpx and builds no client
    (and its TLS context)."""

    def __init__(self, timeout: float) -> None:
        self.timeout = timeout
        self.client: httpx.Client | None = None

    def __call__(self, url: str) -> bool:
        import httpx

        if self.client is None:
            self.client = httpx.Client(timeout=self.timeout)
        try:
            return self.client.get(url).status_code == 200
        except httpx.HTTPError:
            return False

    def __enter__(self) -> _Prober:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.client is not None:
            self.client.close()


def _tail(path: Path, lines: int = 15) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return "(no log)"
    return "\n".join("  " + line for line in text.splitlines()[-lines:])
