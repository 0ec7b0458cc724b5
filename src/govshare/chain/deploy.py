"""Deploying the govshare contracts, and the deployment file every command reads.

``deploy`` creates ConsortiumRegistry (founders, threshold, proposal lifetime,
supervisors), then RecordRegistry(registry) and AccessLedger(registry, records),
and writes a deployment file::

    {
      "format": "govshare-deployment/1",
      "chain_id": 31337,
      "rpc_url": "http://127.0.0.1:8545",
      "deploy_block": 1, "deploy_block_hash": "0x…",
      "created_at": "2026-01-01T00:00:00Z",
      "deployer": "0x…",
      "gas": "auto",
      "contracts": {"ConsortiumRegistry": {"address": "0x…", "artifact_sha256": "…",
                                           "tx_hash": "0x…", "block": 1}, …}
    }

``load_deployment`` validates the file and, given a node, checks that the chain
still holds these contracts: the block the deployment was made in has the same
hash, and the code at each address is the artifact's runtime code (immutables
aside). A reset dev chain fails with a sentence saying so.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from eth_utils import is_address, to_checksum_address

from govshare.chain.abi import CONTRACT_NAMES, Artifact, load_artifact
from govshare.chain.connection import DEFAULT_TIMEOUT, Connection, RpcError
from govshare.chain.contracts import DepartmentInit, to_address
from govshare.chain.reverts import RevertDecoder
from govshare.chain.tx import GasMode, Sender
from govshare.errors import ConfigError, DeploymentNotFound, DeploymentStale, InputError

if TYPE_CHECKING:
    from eth_account.signers.local import LocalAccount

FORMAT = "govshare-deployment/1"
DEFAULT_PROPOSAL_LIFETIME = 7 * 24 * 3600
_GAS_MODES = ("auto", "eip1559", "legacy", "free")


@dataclass(frozen=True)
class ContractDeployment:
    address: str
    artifact_sha256: str
    tx_hash: str = ""
    block: int = 0


@dataclass(frozen=True)
class Deployment:
    """Where the govshare contracts live on one chain."""

    chain_id: int
    rpc_url: str
    deploy_block: int
    deploy_block_hash: str
    contracts: dict[str, ContractDeployment]
    created_at: str
    deployer: str = ""
    gas: str = "auto"
    path: Path | None = field(default=None, compare=False)

    def address(self, name: str) -> str:
        return self.contracts[name].address

    @property
    def addresses(self) -> dict[str, str]:
        return {name: c.address for name, c in self.contracts.items()}

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "chain_id": self.chain_id,
            "rpc_url": self.rpc_url,
            "deploy_block": self.deploy_block,
            "deploy_block_hash": self.deploy_block_hash,
            "created_at": self.created_at,
            "deployer": self.deployer,
            "gas": self.gas,
            "contracts": {
                name: {
                    "address": c.address,
                    "artifact_sha256": c.artifact_sha256,
                    "tx_hash": c.tx_hash,
                    "block": c.block,
                }
                for name, c in self.contracts.items()
            },
        }

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write the file atomically (a crash never leaves half a deployment file)."""
        target = Path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".deployment.", suffix=".tmp")
        try:
            with os.fdopen(fd, "w") as fh:
                json.dump(self.to_dict(), fh, indent=2)
                fh.write("\n")
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return target

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], path: Path | None = None) -> Deployment:
        """Validate a parsed deployment file."""
        where = f"The deployment file {path}" if path else "The deployment"

        def bad(what: str) -> ConfigError:
            return ConfigError(
                f"{where} is not valid: {what}. Re-run `govshare consortium deploy`, or point "
                "to the right file.",
                path=str(path) if path else None,
            )

        if not isinstance(data, Mapping):
            raise bad("it is not a JSON object")
        if data.get("format") != FORMAT:
            raise bad(f"its format is {data.get('format')!r}, not {FORMAT!r}")
        try:
            chain_id = int(data["chain_id"])
            deploy_block = int(data["deploy_block"])
            block_hash = str(data["deploy_block_hash"])
            rpc_url = str(data.get("rpc_url") or "")
            raw_contracts = data["contracts"]
        except (KeyError, TypeError, ValueError) as exc:
            raise bad(f"field {exc} is missing or malformed") from None
        gas = str(data.get("gas") or "auto")
        if gas not in _GAS_MODES:
            raise bad(f"gas must be one of {', '.join(_GAS_MODES)}")
        contracts: dict[str, ContractDeployment] = {}
        for name in CONTRACT_NAMES:
            entry = raw_contracts.get(name) if isinstance(raw_contracts, Mapping) else None
            if not isinstance(entry, Mapping) or not is_address(entry.get("address", "")):
                raise bad(f"it has no valid address for {name}")
            contracts[name] = ContractDeployment(
                address=to_checksum_address(entry["address"]),
                artifact_sha256=str(entry.get("artifact_sha256", "")),
                tx_hash=str(entry.get("tx_hash", "")),
                block=int(entry.get("block", 0)),
            )
        return cls(
            chain_id=chain_id,
            rpc_url=rpc_url,
            deploy_block=deploy_block,
            deploy_block_hash=block_hash,
            contracts=contracts,
            created_at=str(data.get("created_at", "")),
            deployer=str(data.get("deployer", "")),
            gas=gas,
            path=path,
        )


def code_matches(onchain: bytes, artifact_runtime: bytes) -> bool:
    """Whether deployed code is the artifact's runtime code. Immutables are
    zero placeholders in the artifact and filled in at deployment, so bytes may
    differ only where the artifact has zeros."""
    if len(onchain) != len(artifact_runtime) or not onchain:
        return False
    if onchain == artifact_runtime:
        return True
    return all(a == 0 for a, b in zip(artifact_runtime, onchain, strict=True) if a != b)


def verify_deployment(conn: Connection, deployment: Deployment) -> None:
    """Check that the chain at ``conn`` holds this deployment (raises
    :class:`DeploymentStale` with what to do if not)."""
    where = f"the chain at {conn.url}"
    if conn.chain_id != deployment.chain_id:
        raise DeploymentStale(
            f"The deployment was made on chain {deployment.chain_id}, but {where} is chain "
            f"{conn.chain_id}. Point --rpc to the right network, or re-run "
            "`govshare consortium deploy`.",
            url=conn.url,
        )
    try:
        block = conn.request("eth_getBlockByNumber", [hex(deployment.deploy_block), False])
    except RpcError:
        block = None
    if not block or str(block.get("hash")) != deployment.deploy_block_hash:
        raise DeploymentStale(
            f"{where.capitalize()} does not contain the block the govshare contracts were "
            f"deployed in (block {deployment.deploy_block}) — was the dev chain reset? Re-run "
            "`govshare consortium deploy`.",
            url=conn.url,
            block=deployment.deploy_block,
        )
    for name, entry in deployment.contracts.items():
        code = conn.get_code(entry.address)
        if not code:
            raise DeploymentStale(
                f"{where.capitalize()} has no govshare contracts at {entry.address} ({name}) — "
                "was the dev chain reset? Re-run `govshare consortium deploy`.",
                url=conn.url,
                contract=name,
                address=entry.address,
            )
        if not code_matches(code, load_artifact(name).deployed_bytecode):
            raise DeploymentStale(
                f"The code at {entry.address} on {conn.url} is not the {name} contract this "
                "govshare version ships. Upgrade govshare to the version that deployed it, or "
                "re-run `govshare consortium deploy`.",
                url=conn.url,
                contract=name,
                address=entry.address,
            )


def load_deployment(
    source: str | os.PathLike[str] | Mapping[str, Any],
    rpc_url: str | None = None,
    *,
    verify: bool = True,
    conn: Connection | None = None,
    timeout: float = DEFAULT_TIMEOUT,
) -> Deployment:
    """Read and validate a deployment file (or an already parsed dict). With
    ``verify`` (the default), connect to ``rpc_url`` (or the file's URL, or
    ``conn``) and check the contracts are there."""
    if isinstance(source, Mapping):
        deployment = Deployment.from_dict(source)
    else:
        path = Path(source)
        try:
            text = path.read_text()
        except FileNotFoundError:
            raise DeploymentNotFound(
                f"There is no deployment file at {path}. Deploy the contracts first with "
                "`govshare consortium deploy`, or pass the right --home.",
                path=str(path),
            ) from None
        except OSError as exc:
            raise ConfigError(
                f"The deployment file {path} cannot be read: {exc.strerror}."
            ) from exc
        try:
            data = json.loads(text)
        except json.JSONDecodeError:
            raise ConfigError(
                f"The deployment file {path} is not valid JSON. Re-run "
                "`govshare consortium deploy`, or restore the file.",
                path=str(path),
            ) from None
        deployment = Deployment.from_dict(data, path)
    if verify:
        if conn is None:
            url = rpc_url or deployment.rpc_url
            if not url:
                raise ConfigError("No chain URL: pass --rpc URL.")
            with Connection(url, timeout=timeout) as own:
                verify_deployment(own, deployment)
        else:
            verify_deployment(conn, deployment)
    return deployment


def _now() -> str:
    return _dt.datetime.now(tz=_dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def deploy(
    rpc: str | Connection,
    deployer: LocalAccount,
    founders: Sequence[DepartmentInit],
    threshold: int,
    *,
    proposal_lifetime: int = DEFAULT_PROPOSAL_LIFETIME,
    supervisors: Sequence[str] = (),
    path: str | os.PathLike[str] | None = None,
    gas: GasMode = "auto",
    timeout: float | None = None,
) -> Deployment:
    """Deploy and wire the three contracts with ``founders`` registered, and
    write the deployment file to ``path`` (if given). The deployer key only pays
    for deployment; it gets no role in the contracts."""
    if not founders:
        raise InputError("A consortium needs at least one founding department.")
    if not 1 <= int(threshold) <= len(founders):
        raise InputError(
            f"The threshold must be between 1 and the number of founders ({len(founders)}); "
            f"got {threshold}.",
            threshold=threshold,
        )
    if not isinstance(rpc, Connection):
        with Connection(rpc) as conn:
            return deploy(
                conn,
                deployer,
                founders,
                threshold,
                proposal_lifetime=proposal_lifetime,
                supervisors=supervisors,
                path=path,
                gas=gas,
                timeout=timeout,
            )
    conn = rpc
    artifacts: dict[str, Artifact] = {name: load_artifact(name) for name in CONTRACT_NAMES}
    sender = Sender(conn, gas=gas, revert_decoder=RevertDecoder(artifacts.values()))
    founders_chain = [f.to_chain() for f in founders]
    supervisors_chain = [to_address(s, "supervisor account") for s in supervisors]

    def create(name: str, args: Sequence[Any]) -> tuple[str, str, int]:
        art = artifacts[name]
        result = sender.deploy(deployer, art.deploy_data(args), f"deploying {name}", timeout)
        assert result.contract_address is not None
        return result.contract_address, result.tx_hash, result.block_number

    reg = create(
        "ConsortiumRegistry",
        [founders_chain, int(threshold), int(proposal_lifetime), supervisors_chain],
    )
    rec = create("RecordRegistry", [reg[0]])
    acc = create("AccessLedger", [reg[0], rec[0]])
    block = cast(dict[str, Any], conn.request("eth_getBlockByNumber", [hex(reg[2]), False]))
    deployment = Deployment(
        chain_id=conn.chain_id,
        rpc_url=conn.url,
        deploy_block=reg[2],
        deploy_block_hash=str(block["hash"]),
        contracts={
            name: ContractDeployment(addr, artifacts[name].sha256, tx_hash, blk)
            for name, (addr, tx_hash, blk) in zip(CONTRACT_NAMES, (reg, rec, acc), strict=True)
        },
        created_at=_now(),
        deployer=deployer.address,
        gas=gas,
    )
    if path is not None:
        deployment.save(path)
        deployment = Deployment(**{**deployment.__dict__, "path": Path(path)})
    return deployment
