"""Deploy, the deployment file, load_deployment and reset detection."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from eth_account import Account

from govshare.chain.connection import Connection
from govshare.chain.contracts import DepartmentInit
from govshare.chain.deploy import Deployment, code_matches, deploy, load_deployment
from govshare.chain.devnode import AnvilProcess
from govshare.chain.ledger import Ledger
from govshare.errors import ConfigError, DeploymentNotFound, DeploymentStale, InputError

from .conftest import Consortium, hpke_key

DEPLOYER = Account.from_key("0x" + "ab" * 32)


def _founders(n: int = 2) -> list[DepartmentInit]:
    return [
        DepartmentInit(
            c,
            f"Dept {c}",
            Account.create().address,
            (Account.create().address,),
            hpke_key(c),
            f"http://{c.lower()}",
        )
        for c in ("TAX", "MARKET", "COURT")[:n]
    ]


def _fund(conn: Connection) -> None:
    conn.request("anvil_setBalance", [DEPLOYER.address, hex(10**21)])


def test_deployment_file(consortium: Consortium) -> None:
    data = json.loads(consortium.path.read_text())
    assert data["format"] == "govshare-deployment/1"
    assert data["chain_id"] == 31337
    assert set(data["contracts"]) == {"ConsortiumRegistry", "RecordRegistry", "AccessLedger"}
    for entry in data["contracts"].values():
        assert len(entry["artifact_sha256"]) == 64 and entry["tx_hash"].startswith("0x")
    assert data["deploy_block"] == data["contracts"]["ConsortiumRegistry"]["block"]
    assert data["created_at"].endswith("Z") and data["rpc_url"].startswith("http://")
    dep = load_deployment(consortium.path)
    assert dep == consortium.deployment
    assert Deployment.from_dict(dep.to_dict()) == dep
    # Wiring: the ledger's contracts point at each other.
    L = consortium.ledger
    assert L.records.registry_address() == dep.address("ConsortiumRegistry")
    assert L.access.records_address() == dep.address("RecordRegistry")


def test_deploy_checks_inputs(conn: Connection) -> None:
    with pytest.raises(InputError, match="at least one founding"):
        deploy(conn, DEPLOYER, [], 1)
    with pytest.raises(InputError, match="between 1 and the number of founders"):
        deploy(conn, DEPLOYER, _founders(2), 3)
    bad = DepartmentInit("x", "n", Account.create().address, (), b"k", "e")
    with pytest.raises(InputError, match="not a valid department code"):
        deploy(conn, DEPLOYER, [bad], 1)


def test_bad_files(tmp_path: Path) -> None:
    with pytest.raises(DeploymentNotFound, match="govshare consortium deploy"):
        load_deployment(tmp_path / "missing.json")
    p = tmp_path / "d.json"
    p.write_text("{not json")
    with pytest.raises(ConfigError, match="not valid JSON"):
        load_deployment(p)
    p.write_text(json.dumps({"format": "other"}))
    with pytest.raises(ConfigError, match="format"):
        load_deployment(p)


def test_tampered_chain_is_detected(consortium: Consortium, conn: Connection) -> None:
    dep = consortium.deployment
    other = {**dep.to_dict(), "chain_id": 1}
    with pytest.raises(DeploymentStale, match="chain 1"):
        load_deployment(other, conn=conn)
    addr = dep.address("AccessLedger")
    code = conn.get_code(addr)
    try:
        conn.request("anvil_setCode", [addr, "0x"])
        with pytest.raises(DeploymentStale) as err:
            load_deployment(consortium.path)
        assert f"has no govshare contracts at {addr}" in err.value.message
        assert "was the dev chain reset? Re-run `govshare consortium deploy`" in err.value.message
        conn.request("anvil_setCode", [addr, "0x" + "60006000fd" + code.hex()[10:]])
        with pytest.raises(DeploymentStale, match="is not the AccessLedger contract"):
            load_deployment(consortium.path)
    finally:
        conn.request("anvil_setCode", [addr, "0x" + code.hex()])
    load_deployment(consortium.path)


def test_code_matches_allows_only_immutables() -> None:
    art = bytes.fromhex("6080" + "00" * 32 + "5b")
    assert code_matches(bytes.fromhex("6080" + "11" * 32 + "5b"), art)
    assert not code_matches(bytes.fromhex("6081" + "11" * 32 + "5b"), art)
    assert not code_matches(art[:-1], art)
    assert not code_matches(b"", b"")


def test_reset_and_persistent_restart(tmp_path: Path) -> None:
    """A dev chain restarted from its state file keeps the deployment; a chain
    started afresh on the same port is reported as reset."""
    state = tmp_path / "state.json"
    node = AnvilProcess(state=state).start()
    path = tmp_path / "deployment.json"
    try:
        with Connection(node.url) as conn:
            _fund(conn)
            deploy(conn, DEPLOYER, _founders(), 1, path=path)
    finally:
        node.stop()  # SIGTERM: anvil dumps its state
    node = AnvilProcess(port=node.port, state=state).start()
    try:
        with Ledger.from_deployment(path) as ledger:
            assert sorted(ledger.registry.active_departments()) == ["MARKET", "TAX"]
    finally:
        node.stop()
    node = AnvilProcess(port=node.port).start()  # no state: a reset chain
    try:
        with Connection(node.url) as conn:
            conn.request("evm_mine", [])
        with pytest.raises(DeploymentStale) as err:
            Ledger.from_deployment(path)
        assert "was the dev chain reset?" in err.value.message
        assert err.value.code == "config.deployment_stale"
    finally:
        node.stop()
