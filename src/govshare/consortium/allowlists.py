"""Besu local permissioning: the ``permissions_config.toml`` accounts and nodes allowlists.

Besu removed on-chain permissioning contracts, so govshare keeps membership in its
own ConsortiumRegistry and generates every validator's local allowlists from it:

- ``accounts-allowlist``: the accounts allowed to send transactions, i.e. every
  active department's broker and admin accounts (``ConsortiumRegistry.activeAccounts()``)
  plus the operator accounts given explicitly (the deployer).
- ``nodes-allowlist``: the enode URLs of the consortium's validators. Registry entries
  hold no enodes; they come from the ``nodes.json`` that ``govshare consortium
  genesis`` writes beside the genesis (one record per validator, public data only).

The text is byte for byte what Besu's own ``AllowlistPersistor`` writes when the
``PERM`` API changes a list: one ``key=[...]`` line per list, each value a TOML
basic string, joined by ``,`` with no spaces. Besu validates accounts as ``0x`` + 40
hex digits and rejects duplicates; enodes must carry a host and a port.
"""

from __future__ import annotations

import json
import re
import tomllib
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from govshare.consortium.besu import address_hex, parse_address
from govshare.errors import InputError

ACCOUNTS_KEY = "accounts-allowlist"
NODES_KEY = "nodes-allowlist"

_ENODE_RE = re.compile(r"^enode://([0-9a-fA-F]{128})@([^:@/\s]+):(\d{1,5})(\?discport=\d{1,5})?$")


def normalise_account(account: str | bytes) -> str:
    """``0x`` + 40 lower-case hex digits, the form Besu compares case-insensitively."""
    raw = account if isinstance(account, bytes) else parse_address(account)
    if len(raw) != 20:
        raise InputError("An allowlisted account is a 20-byte address.")
    return address_hex(raw)


def validate_enode(enode: str) -> str:
    """Check an enode URL (lower-case hex node id, host, port) and return it unchanged."""
    m = _ENODE_RE.match(enode)
    if not m or not 0 < int(m.group(3)) < 65536:
        raise InputError(
            f"Not an enode URL with a host and port: {enode!r} "
            "(expected enode://<128 hex>@<host>:<port>)."
        )
    return enode


def _dedupe(items: Iterable[str]) -> list[str]:
    seen: set[str] = set()
    out: list[str] = []
    for i in items:
        if i not in seen:
            seen.add(i)
            out.append(i)
    return out


@dataclass(frozen=True)
class Allowlists:
    accounts: tuple[str, ...]
    nodes: tuple[str, ...]

    @classmethod
    def build(cls, accounts: Iterable[str | bytes], enodes: Iterable[str]) -> Allowlists:
        """Normalised, de-duplicated (Besu refuses duplicates), order kept."""
        accs = _dedupe(normalise_account(a) for a in accounts)
        nodes = _dedupe(validate_enode(e) for e in enodes)
        return cls(tuple(accs), tuple(nodes))

    def render(self) -> str:
        return render_permissions_config(self.accounts, self.nodes)


def _toml_array(key: str, values: Iterable[str]) -> str:
    # Besu's AllowlistPersistor: String.format("%s=[%s]", key, "\"v\"" joined by ",").
    return f"{key}=[" + ",".join(json.dumps(v) for v in values) + "]"


def render_permissions_config(accounts: Iterable[str], nodes: Iterable[str]) -> str:
    """The ``permissions_config.toml`` text (values used as given; see :class:`Allowlists`)."""
    return _toml_array(ACCOUNTS_KEY, accounts) + "\n" + _toml_array(NODES_KEY, nodes) + "\n"


def parse_permissions_config(text: str) -> Allowlists:
    """Read a permissions file back (TOML), validating both lists."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise InputError(f"The permissions file is not valid TOML: {exc}") from exc
    accounts = data.get(ACCOUNTS_KEY, [])
    nodes = data.get(NODES_KEY, [])
    if not isinstance(accounts, list) or not isinstance(nodes, list):
        raise InputError("accounts-allowlist and nodes-allowlist must be arrays of strings.")
    return Allowlists.build([str(a) for a in accounts], [str(n) for n in nodes])


def load_node_enodes(nodes_file: Path) -> list[str]:
    """The validators' enode URLs from a ``nodes.json`` written by ``consortium genesis``."""
    try:
        data: Any = json.loads(nodes_file.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise InputError(
            f"Cannot read the nodes file {nodes_file} (written by `govshare consortium "
            "genesis` as nodes.json).",
            path=str(nodes_file),
        ) from exc
    nodes = data.get("nodes") if isinstance(data, dict) else None
    if not isinstance(nodes, list) or not all(isinstance(n, dict) for n in nodes):
        raise InputError(f"{nodes_file} has no 'nodes' list of node records.")
    enodes = []
    for n in nodes:
        enode = n.get("enode")
        if not isinstance(enode, str):
            raise InputError(f"A node record in {nodes_file} has no enode.")
        enodes.append(validate_enode(enode))
    return enodes
