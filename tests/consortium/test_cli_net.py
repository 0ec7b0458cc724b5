"""The genesis/kubo/allowlists/compose commands, through click on a throwaway group
(the shared ``govshare consortium`` group calls ``register`` the same way)."""

from __future__ import annotations

import json
import stat
import tomllib
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from govshare.cli.main import GovShareGroup
from govshare.cli.net import register
from govshare.consortium import allowlists as al
from govshare.consortium import besu, kubo


@pytest.fixture
def run(tmp_path: Path):
    @click.group(cls=GovShareGroup)
    def consortium() -> None:
        """throwaway group"""

    register(consortium)
    runner = CliRunner()

    def invoke(*args: str):
        return runner.invoke(consortium, [*args, "--home", str(tmp_path / "home")])

    return invoke


def mode(p: Path) -> int:
    return stat.S_IMODE(p.stat().st_mode)


def test_genesis_writes_a_network_and_prints_no_key(run, tmp_path: Path) -> None:
    out = tmp_path / "net"
    res = run(
        "genesis", "--validators", "4", "--names", "tax,market,health,transport",
        "--chain-id", "20250", "--block-period", "3", "--out", str(out), "--json",
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    data = json.loads(res.output)
    genesis = json.loads((out / "genesis.json").read_text())
    assert genesis["config"]["qbft"]["blockperiodseconds"] == 3
    assert genesis["config"]["chainId"] == 20250
    keys = {}
    for code in ("tax", "market", "health", "transport"):
        key_file = out / "besu" / code / "key"
        assert mode(key_file) == 0o600
        keys[code] = besu.NodeKey.load(key_file)
        assert keys[code].private_key.hex() not in res.output
        cfg = tomllib.loads((out / "besu" / code / "config.toml").read_text())
        assert len(cfg["bootnodes"]) == 3 and keys[code].node_id not in "".join(cfg["bootnodes"])
    deployer = besu.NodeKey.load(out / "operator" / "deployer.key")
    assert mode(out / "operator" / "deployer.key") == 0o600
    assert deployer.private_key.hex() not in res.output
    extra = besu.decode_qbft_extra_data(bytes.fromhex(genesis["extraData"][2:]))
    assert list(extra.validators) == sorted(k.address for k in keys.values())
    perms = al.parse_permissions_config(
        (out / "permissions" / "permissions_config.toml").read_text()
    )
    assert perms.accounts == (deployer.address_hex,)
    assert set(perms.nodes) == {v["enode"] for v in data["validators"]}
    nodes = json.loads((out / "nodes.json").read_text())
    assert [n["name"] for n in nodes["nodes"]] == ["TAX", "MARKET", "HEALTH", "TRANSPORT"]
    assert data["warnings"] == []


def test_genesis_from_given_key_files_and_refuses_to_overwrite(run, tmp_path: Path) -> None:
    key_files = []
    for pk in (
        "8f2a55949038a9610f50fb23b5883af3b4ecb3c3bb792cbcefbd1542c692be63",
        "c87509a1c067bbde78beb793e6fa76530b6382a4c0241e5e4a9ec0a0f44dc0d3",
    ):
        p = tmp_path / f"{pk[:4]}.key"
        p.write_text("0x" + pk + "\n")
        key_files += ["--validator-key", str(p)]
    out = tmp_path / "net"
    account = "0xFE3B557E8FB62B89F4916B721BE55CEB828DBD73"
    res = run(
        "genesis", *key_files, "--chain-id", "7", "--no-deployer", "--account", account,
        "--out", str(out),
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    assert "no faulty node" in res.output  # two validators: warned, not refused
    genesis = json.loads((out / "genesis.json").read_text())
    got = besu.decode_qbft_extra_data(bytes.fromhex(genesis["extraData"][2:])).validators
    assert [v.hex() for v in got] == sorted(
        ["fe3b557e8fb62b89f4916b721be55ceb828dbd73", "627306090abab3a6e1400e9345bc60c78a8bef57"]
    )
    perms = (out / "permissions" / "permissions_config.toml").read_text()
    assert perms.startswith('accounts-allowlist=["0xfe3b557e8fb62b89f4916b721be55ceb828dbd73"]\n')
    again = run("genesis", *key_files, "--chain-id", "7", "--out", str(out))
    assert again.exit_code == 1 and "already exists" in again.output


def test_genesis_usage_errors(run, tmp_path: Path) -> None:
    assert run("genesis", "--chain-id", "1", "--out", str(tmp_path / "x")).exit_code == 2
    res = run("genesis", "--validators", "4", "--names", "a,b", "--chain-id", "1",
              "--out", str(tmp_path / "y"))  # fmt: skip
    assert res.exit_code == 2
    bad = tmp_path / "bad.key"
    bad.write_text("0x1234")
    res = run("genesis", "--validator-key", str(bad), "--chain-id", "1", "--out", str(tmp_path))
    assert res.exit_code == 1 and "32 bytes" in res.output


def test_kubo_writes_a_private_swarm(run, tmp_path: Path) -> None:
    res = run("kubo", "--nodes", "4", "--out", str(tmp_path), "--json")
    assert res.exit_code == 0, res.output
    base = tmp_path / "kubo"
    key_text = (base / "swarm.key").read_text()
    assert mode(base / "swarm.key") == 0o600
    assert kubo.format_swarm_key(kubo.parse_swarm_key(key_text)) == key_text
    assert key_text.split("\n")[2] not in res.output
    peers = json.loads((base / "peers.json").read_text())["nodes"]
    assert [p["name"] for p in peers] == ["ORG1", "ORG2", "ORG3", "ORG4"]
    for p in peers:
        d = base / p["name"].lower()
        ident = kubo.PeerIdentity.from_kubo_privkey((d / "kubo_identity.key").read_text())
        assert ident.peer_id == p["peer_id"]
        assert mode(d / "kubo_identity.key") == 0o600 and mode(d / "kubo_api_token") == 0o600
        token = (d / "kubo_api_token").read_text()
        assert token not in res.output and ident.kubo_privkey not in res.output
        script = (d / "container-init.d" / "010-govshare-private-swarm.sh").read_text()
        assert token not in script and ident.kubo_privkey not in script
        assert mode(d / "container-init.d" / "010-govshare-private-swarm.sh") == 0o755
        frag = json.loads((d / "config.json").read_text())
        assert p["multiaddr"] not in frag["Bootstrap"] and len(frag["Bootstrap"]) == 3
    assert run("kubo", "--nodes", "4", "--out", str(tmp_path)).exit_code == 1  # no overwrite
    assert run("kubo", "--nodes", "4", "--out", str(tmp_path), "--force").exit_code == 0


def test_allowlists_from_nodes_json_and_accounts(run, tmp_path: Path) -> None:
    out = tmp_path / "net"
    assert run("genesis", "--validators", "4", "--chain-id", "1", "--out", str(out)).exit_code == 0
    target = out / "permissions" / "permissions_config.toml"
    res = run(
        "allowlists", "--account", "0x627306090abaB3A6e1400e9345bC60c78a8BEf57",
        "--account", "0x627306090abab3a6e1400e9345bc60c78a8bef57", "--out", str(target),
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    lists = al.parse_permissions_config(target.read_text())
    assert lists.accounts == ("0x627306090abab3a6e1400e9345bc60c78a8bef57",)
    assert len(lists.nodes) == 4
    assert "perm_reloadPermissionsFromFile" in res.output
    none = run("allowlists", "--out", str(target))
    assert none.exit_code == 1 and "No account" in none.output
    missing = run("allowlists", "--account", "0x" + "11" * 20, "--out", str(tmp_path / "a" / "p"))
    assert missing.exit_code == 1 and "nodes.json" in missing.output


def test_allowlists_reads_the_registry_through_the_ledger(run, tmp_path: Path, monkeypatch):
    out = tmp_path / "net"
    assert run("genesis", "--validators", "4", "--chain-id", "1", "--out", str(out)).exit_code == 0
    import govshare.cli.net as net

    seen = {}

    def fake(rpc: str, deployment: Path) -> list[str]:
        seen["args"] = (rpc, deployment)
        return ["0x" + "aa" * 20, "0x" + "bb" * 20]

    monkeypatch.setattr(net, "_registry_accounts", fake)
    target = out / "permissions" / "permissions_config.toml"
    res = run("allowlists", "--rpc", "http://besu-tax:8545", "--out", str(target))
    assert res.exit_code == 0, res.output
    assert seen["args"] == ("http://besu-tax:8545", tmp_path / "home" / "deployment.json")
    assert al.parse_permissions_config(target.read_text()).accounts == (
        "0x" + "aa" * 20,
        "0x" + "bb" * 20,
    )


def test_compose_command(run, tmp_path: Path) -> None:
    target = tmp_path / "compose.yml"
    res = run("compose", "--orgs", "a,b,c,d,e", "--out", str(target))
    assert res.exit_code == 0, res.output
    text = target.read_text()
    assert "besu-e:" in text and "broker-e:" in text
    assert run("compose", "--orgs", "a,a", "--out", str(target)).exit_code == 1


def test_add_node_extends_a_network_without_touching_its_keys(run, tmp_path: Path) -> None:
    out = tmp_path / "net"
    names = "tax,market,health,transport"
    assert run("genesis", "--validators", "4", "--names", names, "--chain-id", "9",
               "--out", str(out)).exit_code == 0  # fmt: skip
    assert run("kubo", "--names", names, "--out", str(out)).exit_code == 0
    genesis = (out / "genesis.json").read_text()
    secrets = {p: p.read_bytes() for p in out.rglob("*") if p.is_file() and mode(p) == 0o600}

    res = run("add-node", "--name", "court", "--out", str(out), "--json")
    assert res.exit_code == 0, res.output
    data = json.loads(res.output)
    key = besu.NodeKey.load(out / "besu" / "court" / "key")
    assert mode(out / "besu" / "court" / "key") == 0o600 and key.private_key.hex() not in res.output
    assert data["validator"]["address"].lower() == key.address_hex
    assert (out / "genesis.json").read_text() == genesis  # joins by vote, not by genesis
    assert all(p.read_bytes() == b for p, b in secrets.items())
    nodes = json.loads((out / "nodes.json").read_text())
    assert [n["name"] for n in nodes["nodes"]] == ["TAX", "MARKET", "HEALTH", "TRANSPORT", "COURT"]
    enodes = [n["enode"] for n in nodes["nodes"]]
    for n in nodes["nodes"]:
        cfg = tomllib.loads((out / "besu" / n["name"].lower() / "config.toml").read_text())
        assert sorted(cfg["bootnodes"]) == sorted(e for e in enodes if e != n["enode"])
    peers = json.loads((out / "kubo" / "peers.json").read_text())["nodes"]
    assert [p["name"] for p in peers][-1] == "COURT" and len(peers) == 5
    court = kubo.PeerIdentity.from_kubo_privkey((out / "kubo/court/kubo_identity.key").read_text())
    assert court.peer_id == peers[-1]["peer_id"] == data["kubo"]["peer_id"]
    assert mode(out / "kubo" / "court" / "kubo_api_token") == 0o600
    for p in peers:
        frag = json.loads((out / "kubo" / p["name"].lower() / "config.json").read_text())
        assert {x["ID"] for x in frag["Peering.Peers"]} == {
            q["peer_id"] for q in peers if q["name"] != p["name"]
        }
        script = (out / "kubo" / p["name"].lower() / "container-init.d"
                  / "010-govshare-private-swarm.sh").read_text()  # fmt: skip
        assert court.peer_id in script  # peers with COURT (COURT's own: its identity)

    again = run("add-node", "--name", "COURT", "--out", str(out))
    assert again.exit_code == 1 and "already a node" in again.output
    lonely = run("add-node", "--name", "X1", "--out", str(tmp_path / "empty"))
    assert lonely.exit_code == 1 and "genesis" in lonely.output
