"""A private PostgreSQL cluster for the local consortium (``govshare dev up
--database postgresql``): one cluster per home, one database per department.

Debian's server (``/usr/lib/postgresql/N/bin``: ``make setup`` installs the
``postgresql`` package when run as root). The cluster listens on 127.0.0.1 at a
port chosen at the first ``dev up`` (and on a Unix socket in its own directory
only); connections over TCP need the password of its ``govshare`` role
(scram-sha-256), kept in ``HOME/dev/postgres/password`` (0600). Its data stay
across ``dev down``/``dev up``. ``initdb`` refuses to run as root: as root,
every server command runs as the ``postgres`` user, and the cluster lives in a
directory that user owns (``/tmp/govshare-pg-<id of the home>``, recorded in
``HOME/dev/postgres/cluster.json``), since the home itself may be closed to it.
"""

from __future__ import annotations

import hashlib
import json
import os
import pwd
import re
import secrets
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

from govshare.errors import DevNodeError
from govshare.home import dev_dir

__all__ = ["DevPostgres", "dev_database_url"]

USER = "govshare"
_DB_NAME = re.compile(r"[^a-z0-9_]")


def find_pg_bin() -> Path:
    """The newest PostgreSQL server's bin directory (initdb, pg_ctl, createdb)."""
    found = sorted(
        Path("/usr/lib/postgresql").glob("*/bin/initdb"),
        key=lambda p: int(p.parent.parent.name) if p.parent.parent.name.isdigit() else 0,
    )
    if found:
        return found[-1].parent
    on_path = shutil.which("initdb")
    if on_path and shutil.which("pg_ctl"):
        return Path(on_path).parent
    raise DevNodeError(
        "PostgreSQL's server (initdb, pg_ctl) is not installed: `make setup` installs "
        "Debian's postgresql package when run as root."
    )


def database_name(code: str) -> str:
    return "dept_" + _DB_NAME.sub("_", code.lower())


def dev_database_url(home: Path, code: str) -> str | None:
    """CODE's broker database in this dev home's cluster, or None when the home's
    consortium keeps its databases in SQLite files."""
    folder = dev_dir(home) / "postgres"
    try:
        info = json.loads((folder / "cluster.json").read_text())
        password = (folder / "password").read_text().strip()
        port = int(info["port"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return f"postgresql+psycopg://{USER}:{password}@127.0.0.1:{port}/{database_name(code)}"


class DevPostgres:
    """The cluster of one dev home."""

    def __init__(self, home: Path) -> None:
        self.home = home
        self.dir = dev_dir(home) / "postgres"
        self.meta_file = self.dir / "cluster.json"
        self.password_file = self.dir / "password"
        self.bindir = find_pg_bin()
        self.run_as: pwd.struct_passwd | None = None
        if os.geteuid() == 0:
            try:
                self.run_as = pwd.getpwnam("postgres")
            except KeyError:
                raise DevNodeError(
                    "Running as root, and there is no `postgres` user to run initdb as."
                ) from None

    # -- where it lives ----------------------------------------------------------------------

    def _meta(self) -> dict[str, Any]:
        try:
            data: dict[str, Any] = json.loads(self.meta_file.read_text())
            return data
        except (OSError, ValueError):
            return {}

    @property
    def root(self) -> Path:
        """The cluster's directory (data, socket, log)."""
        meta = self._meta()
        if meta.get("root"):
            return Path(meta["root"])
        if self.run_as is None:
            return self.dir / "cluster"
        digest = hashlib.sha256(str(self.home.resolve()).encode()).hexdigest()[:12]
        return Path(tempfile.gettempdir()) / f"govshare-pg-{digest}"

    def url(self, code: str) -> str:
        url = dev_database_url(self.home, code)
        if url is None:
            raise DevNodeError(f"The dev PostgreSQL cluster of {self.home} was never set up.")
        return url

    # -- commands ----------------------------------------------------------------------------

    def _run(self, exe: str, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        cmd = [str(self.bindir / exe), *args]
        if self.run_as is not None:
            cmd = ["runuser", "-u", "postgres", "--", *cmd]
        done = subprocess.run(
            cmd, capture_output=True, text=True, timeout=120, check=False, cwd=self.root
        )
        if check and done.returncode != 0:
            log = self.root / "server.log"
            tail = log.read_text(errors="replace")[-1500:] if log.is_file() else ""
            raise DevNodeError(
                f"{exe} failed: {(done.stderr or done.stdout).strip()[-1500:]}\n{tail}".strip()
            )
        return done

    def _own(self, path: Path) -> None:
        if self.run_as is not None:
            os.chown(path, self.run_as.pw_uid, self.run_as.pw_gid)

    def running(self) -> bool:
        if not (self.root / "data" / "PG_VERSION").is_file():
            return False
        return (
            self._run("pg_ctl", "-D", str(self.root / "data"), "status", check=False).returncode
            == 0
        )

    def up(self, codes: list[str], port: int) -> None:
        """Create the cluster once, start it unless it runs, and give every
        department of ``codes`` its database."""
        self.dir.mkdir(parents=True, exist_ok=True)
        os.chmod(self.dir, 0o700)
        root = self.root
        root.mkdir(parents=True, exist_ok=True)
        os.chmod(root, 0o700)
        self._own(root)
        if not self.password_file.is_file():
            self.password_file.write_text(secrets.token_hex(16) + "\n")
            self.password_file.chmod(0o600)
        if not self.meta_file.is_file():
            self.meta_file.write_text(json.dumps({"root": str(root), "port": port}) + "\n")
        port = int(self._meta()["port"])
        data = root / "data"
        if not (data / "PG_VERSION").is_file():
            pwfile = root / "pwfile"
            pwfile.write_text(self.password_file.read_text())
            pwfile.chmod(0o600)
            self._own(pwfile)
            try:
                self._run(
                    "initdb", "-D", str(data), "-U", USER, f"--pwfile={pwfile}",
                    "--auth-local=trust", "--auth-host=scram-sha-256",
                    "--encoding=UTF8", "--locale=C", "--no-instructions",
                )  # fmt: skip
            finally:
                pwfile.unlink(missing_ok=True)
        if not self.running():
            options = (
                f"-c listen_addresses=127.0.0.1 -c port={port} -c unix_socket_directories={root}"
            )
            self._run(
                "pg_ctl", "-D", str(data), "-l", str(root / "server.log"), "-o", options,
                "-w", "-t", "60", "start",
            )  # fmt: skip
        have = self._run(
            "psql", "-h", str(root), "-p", str(port), "-U", USER, "-d", "postgres",
            "-Atc", "SELECT datname FROM pg_database",
        ).stdout.split()  # fmt: skip
        for code in codes:
            name = database_name(code)
            if name not in have:
                self._run("createdb", "-h", str(root), "-p", str(port), "-U", USER, name)

    def stop(self) -> bool:
        """Stop the cluster (its data stay); False if it was not running."""
        if not self.running():
            return False
        self._run("pg_ctl", "-D", str(self.root / "data"), "-m", "fast", "-w", "-t", "60", "stop")
        return True
