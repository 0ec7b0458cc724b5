"""Where govshare keeps its state: the home directory (``--home``, else the
``home`` setting — ``GOVSHARE_HOME`` —, else ``~/.govshare``) and the fixed layout
under it.

    HOME/
      deployment.json        chain id, contract addresses, deploy block (written by deploy)
      chain/                 the local dev chain (anvil state, pid, log)
      dev/                   the local consortium: devnet.json (its state), brokers'
                             pids and logs, kubo/ and postgres/ (dev up's engines)
      depts/CODE/            one department profile: config.json, keystores, HPKE key
      blobs/                 the default local blob store
"""

from __future__ import annotations

import os
from pathlib import Path


def resolve_home(explicit: str | os.PathLike[str] | None = None) -> Path:
    """The govshare home: ``explicit`` (``--home`` or the ``home`` setting), else
    ``~/.govshare``."""
    if explicit:
        return Path(explicit).expanduser().resolve()
    return (Path.home() / ".govshare").resolve()


def ensure_dir(path: Path, private: bool = True) -> Path:
    """Create ``path`` (and parents); private directories are 0700 (they hold keystores)."""
    path.mkdir(parents=True, exist_ok=True)
    if private:
        os.chmod(path, 0o700)
    return path


def deployment_path(home: Path) -> Path:
    return home / "deployment.json"


def chain_dir(home: Path) -> Path:
    return home / "chain"


def dept_dir(home: Path, code: str) -> Path:
    return home / "depts" / code.upper()


def mirror_path(home: Path) -> Path:
    """The ledger mirror this home's commands read (``audit``, ``grant list``): a
    cache of the chain's events, rebuilt from the chain when deleted."""
    return home / "audit" / "index.db"


def blob_dir(home: Path) -> Path:
    return home / "blobs"


def dev_dir(home: Path) -> Path:
    """The local consortium's own folder (``govshare dev up``)."""
    return home / "dev"


def dev_state_path(home: Path) -> Path:
    """The local consortium's state: departments, threshold, its engines and ports."""
    return dev_dir(home) / "devnet.json"
