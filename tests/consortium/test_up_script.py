"""scripts/consortium_up.sh --generate-only for real (no Docker needed), and what the
stack then does with its output, each step with the real programs the containers run:

- the generated tree: keys and passwords 0600, one subject key for every department,
  founders.json = the profiles' public entries, the founders' allowlist, the .env;
- the compose `deploy` service's own argv (through docker/deploy-once.sh) deploys the
  consortium from founders.json on an anvil that runs like the Besu network: chain id
  20250, free gas, the generated (unfunded) deployer key;
- docker/prepare-volumes.sh fills the volumes; `govshare serve`, given the compose
  broker's environment, starts from the broker's secrets volume and matches its
  registry entry; `govshare user add` (the documented one-liner) works on the broker's
  data volume and its token opens the API;
- a fifth department: consortium_up.sh --orgs …,COURT extends the network, and
  docker/add-department.sh admits it on chain and regenerates the allowlists.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import stat
import subprocess
import sys
import time
import tomllib
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from govshare.chain.devnode import AnvilProcess, free_port
from govshare.chain.ledger import Ledger
from govshare.cli.consortium import _founder_inits
from govshare.cli.main import Ctx
from govshare.consortium import allowlists as al
from govshare.consortium import besu, compose, kubo
from govshare.profile import load_profile_dir

ROOT = Path(__file__).resolve().parents[2]
UP = ROOT / "scripts" / "consortium_up.sh"
DOCKER = ROOT / "docker"
BIN = Path(sys.executable).parent
ORGS = list(compose.DEFAULT_ORGS)
CHAIN_ID = 20250
# anvil as the Besu network runs: free gas (eth_gasPrice 0, base fee 0), blocks on demand.
FREE_GAS = ["--base-fee", "0", "--gas-price", "0", "--disable-min-priority-fee"]

DEPT_SECRETS = ("broker.keystore.json", "admin.keystore.json", "hpke.key.json", "subject.key",
                "broker.password", "admin.password")  # fmt: skip

pytestmark = pytest.mark.skipif(shutil.which("bash") is None, reason="no bash")


def mode(p: Path) -> int:
    return stat.S_IMODE(p.stat().st_mode)


def env_with(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GOVSHARE_")}
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
    env["GOVSHARE_SCRYPT_N"] = "1024"  # cheap keystores: tests only
    env.update(extra)
    return env


def run_up(gen: Path, *args: str) -> subprocess.CompletedProcess[str]:
    res = subprocess.run(
        [str(UP), "--generate-only", *args],
        capture_output=True,
        text=True,
        env=env_with(GOVSHARE_GENERATED_DIR=str(gen)),
        check=False,
        timeout=120,
    )
    assert res.returncode == 0, res.stdout + res.stderr
    return res


def read_env(gen: Path) -> dict[str, str]:
    lines = (gen / ".env").read_text().splitlines()
    return dict(ln.split("=", 1) for ln in lines if ln and not ln.startswith("#"))


@pytest.fixture(scope="module")
def gen(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("up") / "generated"
    run_up(out, "--name", "TAX=Tax Bureau", "--name", "market=Market Regulation")
    return out


@pytest.fixture(scope="module")
def chain() -> Iterator[AnvilProcess]:
    with AnvilProcess(chain_id=CHAIN_ID, extra_args=FREE_GAS) as node:
        yield node


def container_path(arg: str, mapping: dict[str, Path]) -> str:
    for prefix, host in mapping.items():
        if arg == prefix or arg.startswith(prefix + "/"):
            return str(host) + arg[len(prefix) :]
    return arg


@pytest.fixture(scope="module")
def deployed(gen: Path, chain: AnvilProcess, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The compose deploy service, run as compose would run it, paths mapped to the host."""
    home = tmp_path_factory.mktemp("deployment-volume")
    svc = compose.build_compose(ORGS)["services"]["deploy"]
    mapping = {
        compose.GOVSHARE_HOME: home,
        compose.GENERATED: gen,
        compose.SECRETS: gen / "operator",  # the operator-secrets volume holds deployer.key
    }
    threshold = read_env(gen)["GOVSHARE_THRESHOLD"]
    argv = []
    for a in svc["command"]:
        a = a.replace(svc["environment"]["GOVSHARE_RPC"], chain.url)
        a = re.sub(r"\$\{GOVSHARE_THRESHOLD:-\d+\}", threshold, a)
        argv.append(container_path(a, mapping))
    assert svc["entrypoint"] == ["/bin/sh", "/docker/deploy-once.sh"]
    env = env_with(
        GOVSHARE_RPC=chain.url,
        GOVSHARE_DEPLOYMENT_FILE=container_path(
            svc["environment"]["GOVSHARE_DEPLOYMENT_FILE"], mapping
        ),
        DEPLOY_WAIT_SECONDS="20",
    )
    httpx.post(chain.url, json={"jsonrpc": "2.0", "id": 1, "method": "evm_mine", "params": []})
    script = str(DOCKER / "deploy-once.sh")
    res = subprocess.run(
        ["sh", script, *argv], capture_output=True, text=True, env=env, timeout=120
    )
    assert res.returncode == 0, res.stdout + res.stderr
    out = home / "deployment.json"
    assert out.is_file() and mode(out) == 0o644
    # Compose runs one-shot services on every `up`: the second run deploys nothing.
    again = subprocess.run(["sh", script, *argv], capture_output=True, text=True, env=env)
    assert again.returncode == 0 and "already deployed" in again.stdout
    return out


# --- the generated tree -------------------------------------------------------------


def test_generated_tree_holds_everything_with_secrets_private(gen: Path) -> None:
    assert mode(gen) == 0o700
    public = ["genesis.json", "nodes.json", "founders.json", "kubo/peers.json",
              "permissions/permissions_config.toml", "operator/deployer.address"]  # fmt: skip
    secret = [".env", "subject.key", "operator/deployer.key", "kubo/swarm.key"]
    for org in ORGS:
        o = org.lower()
        public += [f"besu/{o}/config.toml", f"kubo/{o}/config.json",
                   f"depts/{org}/config.json", f"depts/{org}/public.json"]  # fmt: skip
        secret += [f"besu/{o}/key", f"kubo/{o}/kubo_identity.key", f"kubo/{o}/kubo_api_token"]
        secret += [f"depts/{org}/{f}" for f in DEPT_SECRETS]
        assert not (gen / "depts" / org / "init.json").exists()
    for rel in public:
        assert mode(gen / rel) == 0o644, rel
    for rel in secret:
        assert mode(gen / rel) == 0o600, rel
    # Bind-mounted directories are readable by the images' users.
    assert mode(gen / "permissions") == 0o755
    assert mode(gen / "kubo" / "tax" / "container-init.d") == 0o755


def test_one_subject_key_and_distinct_passwords(gen: Path) -> None:
    shared = (gen / "subject.key").read_text().strip()
    assert re.fullmatch(r"[0-9a-f]{64}", shared)
    passwords = []
    for org in ORGS:
        d = gen / "depts" / org
        assert (d / "subject.key").read_text().strip() == shared
        passwords += [(d / "broker.password").read_text(), (d / "admin.password").read_text()]
    assert len(set(passwords)) == len(passwords) and all(len(p) > 40 for p in passwords)


def test_profiles_unlock_with_their_generated_passwords(gen: Path) -> None:
    d = gen / "depts" / "TAX"
    prof = load_profile_dir(d)
    assert prof.name == "Tax Bureau" and prof.endpoint == "http://broker-tax:8443"
    broker = prof.unlock_broker((d / "broker.password").read_text().strip())
    assert broker.address == prof.broker_address
    admin = prof.unlock_admin((d / "admin.password").read_text().strip())
    assert admin.address == prof.admin_address
    assert load_profile_dir(gen / "depts" / "MARKET").name == "Market Regulation"


def test_founders_are_the_profiles_public_entries_and_parse(gen: Path) -> None:
    founders = json.loads((gen / "founders.json").read_text())
    assert [f["code"] for f in founders] == ORGS
    for entry in founders:
        d = gen / "depts" / entry["code"]
        assert entry == load_profile_dir(d).public_info()
        assert json.loads((d / "public.json").read_text()) == entry
    # The real `govshare consortium deploy --founders FILE` parser accepts it.
    ctx = Ctx(home_opt=str(gen), json_out=True)
    inits = _founder_inits(ctx, str(gen / "founders.json"))
    assert [i.code for i in inits] == ORGS
    assert inits[0].broker == founders[0]["broker"]


def test_founders_allowlist_and_env(gen: Path) -> None:
    lists = al.parse_permissions_config(
        (gen / "permissions" / "permissions_config.toml").read_text()
    )
    founders = json.loads((gen / "founders.json").read_text())
    want = {(gen / "operator" / "deployer.address").read_text().strip().lower()}
    for f in founders:
        want |= {f["broker"].lower(), *(a.lower() for a in f["admins"])}
    assert set(lists.accounts) == want and len(want) == 1 + 2 * len(ORGS)
    assert set(lists.nodes) == set(al.load_node_enodes(gen / "nodes.json"))
    env = read_env(gen)
    assert env["GOVSHARE_THRESHOLD"] == "3"  # a majority of four
    assert env["OPERATOR_UID"] == str(os.getuid()) and env["BROKER_BIND"] == "127.0.0.1"
    assert [env[f"BROKER_PORT_{o}"] for o in ORGS] == ["8443", "8444", "8445", "8446"]


def test_rerun_reuses_every_key(gen: Path, tmp_path: Path) -> None:
    copy = tmp_path / "generated"
    shutil.copytree(gen, copy)
    before = {p: p.read_bytes() for p in copy.rglob("*") if p.is_file() and mode(p) == 0o600}
    res = run_up(copy, "--threshold", "4")
    assert "reusing" in res.stdout and "creating department" not in res.stdout
    for p, data in before.items():
        if p.name != ".env":
            assert p.read_bytes() == data, p
    assert read_env(copy)["GOVSHARE_THRESHOLD"] == "4"


def test_bad_options_are_refused_before_writing(tmp_path: Path) -> None:
    gen = tmp_path / "g"
    for args, msg in (
        (["--threshold", "5"], "between 1 and"),
        (["--orgs", "TAX,tax"], "listed twice"),
        (["--orgs", "T"], "2-16 letters"),
        (["--name", "COURT=Court"], "not in --orgs"),
    ):
        res = subprocess.run(
            [str(UP), "--generate-only", *args],
            capture_output=True,
            text=True,
            env=env_with(GOVSHARE_GENERATED_DIR=str(gen)),
            check=False,
        )
        assert res.returncode == 2 and msg in res.stderr, (args, res.stderr)
    assert not gen.exists()


# --- deploy, prepare, serve, users --------------------------------------------------


def test_compose_deploy_command_deploys_the_founders(gen: Path, deployed: Path, chain) -> None:
    ledger = Ledger.from_deployment(deployed, chain.url)
    reg = ledger.registry
    assert reg.threshold() == 3
    assert sorted(reg.all_departments()) == sorted(ORGS)
    for org in ORGS:
        prof = load_profile_dir(gen / "depts" / org)
        entry = reg.get_department(org)
        assert entry.active
        assert entry.broker.lower() == prof.broker_address.lower()
        assert [a.lower() for a in entry.admins] == [prof.admin_address.lower()]
        assert bytes(entry.encryption_key) == prof.hpke_public_key
        assert entry.endpoint == f"http://broker-{org.lower()}:8443"
    doc = json.loads(deployed.read_text())
    assert doc["chain_id"] == CHAIN_ID
    deployer = (gen / "operator" / "deployer.address").read_text().strip()
    assert doc["deployer"].lower() == deployer.lower()  # the generated key paid nothing


@pytest.fixture(scope="module")
def volumes(gen: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    if os.geteuid() != 0:
        pytest.skip("prepare-volumes.sh chowns files to the images' users: needs root")
    vol = tmp_path_factory.mktemp("volumes")
    svc = compose.build_compose(ORGS)["services"]["prepare"]
    res = subprocess.run(
        ["sh", str(DOCKER / "prepare-volumes.sh"), *svc["command"]],
        capture_output=True,
        text=True,
        env={**env_with(), "GENERATED_DIR": str(gen), "VOLUMES_DIR": str(vol)},
        check=False,
    )
    assert res.returncode == 0, res.stderr
    return vol


def test_prepare_fills_the_broker_volumes_for_serve(volumes: Path, gen: Path) -> None:
    secrets = volumes / "broker-tax-secrets"
    names = {p.name for p in secrets.iterdir()}
    assert names == {"config.json", "broker.keystore.json", "hpke.key.json", "subject.key",
                     "broker.password", "kubo_api_token"}  # fmt: skip
    for p in secrets.iterdir():
        st = p.stat()
        assert (st.st_uid, mode(p)) == (compose.GOVSHARE_UID, 0o400), p.name
        assert (
            p.read_bytes()
            == (
                gen / "kubo" / "tax" / p.name
                if p.name == "kubo_api_token"
                else gen / "depts/TAX" / p.name
            ).read_bytes()
        )
    assert (secrets.stat().st_uid, mode(secrets)) == (compose.GOVSHARE_UID, 0o700)
    public = volumes / "broker-tax-data" / "depts" / "TAX" / "config.json"
    assert public.read_bytes() == (gen / "depts" / "TAX" / "config.json").read_bytes()
    key = volumes / "besu-tax-secrets" / "key"
    assert (key.stat().st_uid, mode(key)) == (compose.BESU_UID, 0o400)
    assert (volumes / "operator-secrets" / "deployer.key").read_bytes() == (
        gen / "operator" / "deployer.key"
    ).read_bytes()


def test_prepare_refuses_a_department_without_profile(gen: Path, tmp_path: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root")
    res = subprocess.run(
        ["sh", str(DOCKER / "prepare-volumes.sh"), "TAX", "COURT"],
        capture_output=True,
        text=True,
        env={**env_with(), "GENERATED_DIR": str(gen), "VOLUMES_DIR": str(tmp_path / "v")},
        check=False,
    )
    assert res.returncode == 1 and "besu/court/key" in res.stderr
    assert not (tmp_path / "v").exists()  # checked before anything was written


def test_broker_starts_from_its_secrets_volume_and_users_get_in(
    volumes: Path, deployed: Path, chain: AnvilProcess, tmp_path: Path
) -> None:
    svc = compose.build_compose(ORGS)["services"]["broker-tax"]
    env_c = svc["environment"]
    mapping = {
        compose.GOVSHARE_HOME: volumes / "broker-tax-data",
        compose.SECRETS: volumes / "broker-tax-secrets",
        compose.DEPLOYMENT_DIR: deployed.parent,
    }
    env = env_with(**{k: container_path(v, mapping) for k, v in env_c.items()})
    env["GOVSHARE_RPC"] = chain.url
    env["GOVSHARE_STORE"] = f"local:{tmp_path / 'blobs'}"  # Kubo is not here
    assert "GOVSHARE_PASSWORD" not in env  # the password comes from the secrets volume
    port = free_port("127.0.0.1")
    wait = re.search(r"--wait-chain (\d+)", svc["command"][-1])
    assert wait is not None
    log = tmp_path / "serve.log"
    with log.open("wb") as fh:
        proc = subprocess.Popen(
            [
                str(BIN / "govshare"),
                "serve",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--wait-chain",
                wait.group(1),
            ],
            env=env,
            stdout=fh,
            stderr=subprocess.STDOUT,
        )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            assert proc.poll() is None, log.read_text()
            try:
                if httpx.get(f"{base}/readyz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.1)
        # The documented one-liner, `… exec broker-tax govshare user add …`: same env.
        res = subprocess.run(
            [
                str(BIN / "govshare"),
                "user",
                "add",
                "alice",
                "--role",
                "clerk",
                "--dept",
                "TAX",
                "--json",
            ],
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
        assert res.returncode == 0, res.stderr
        token = json.loads(res.stdout)["token"]
        me = httpx.get(f"{base}/v1/me", headers={"Authorization": f"Bearer {token}"})
        assert me.status_code == 200, me.text
        assert me.json()["department"] == "TAX"
    finally:
        proc.terminate()
        proc.wait(timeout=15)
    text = log.read_text()
    assert "Warning" not in text, text  # the registry holds exactly this broker's keys


# --- a fifth department -------------------------------------------------------------


def test_fifth_department_joins(gen: Path, deployed: Path, chain: AnvilProcess, tmp_path: Path):
    g5 = tmp_path / "generated"
    shutil.copytree(gen, g5)
    shutil.copy(deployed, g5 / "deployment.json")  # what `ops` syncs after `up`
    perms = g5 / "permissions" / "permissions_config.toml"
    perms_before = perms.read_text()
    old_keys = {o: (g5 / "besu" / o.lower() / "key").read_text() for o in ORGS}

    orgs5 = [*ORGS, "COURT"]
    res = run_up(g5, "--orgs", ",".join(orgs5), "--name", "COURT=Supreme Court")
    assert "adding COURT's validator" in res.stdout
    assert "docker/add-department.sh COURT" in res.stdout
    assert {o: (g5 / "besu" / o.lower() / "key").read_text() for o in ORGS} == old_keys
    nodes = json.loads((g5 / "nodes.json").read_text())["nodes"]
    assert [n["name"] for n in nodes] == orgs5
    court = besu.NodeKey.load(g5 / "besu" / "court" / "key")
    assert nodes[-1]["address"].lower() == court.address_hex
    tax_cfg = tomllib.loads((g5 / "besu" / "tax" / "config.toml").read_text())
    assert nodes[-1]["enode"] in tax_cfg["bootnodes"] and len(tax_cfg["bootnodes"]) == 4
    peers = json.loads((g5 / "kubo" / "peers.json").read_text())["nodes"]
    court_peer = peers[-1]["peer_id"]
    tax_swarm = json.loads((g5 / "kubo" / "tax" / "config.json").read_text())
    assert court_peer in {p["ID"] for p in tax_swarm["Peering.Peers"]}
    assert (
        kubo.PeerIdentity.from_kubo_privkey(
            (g5 / "kubo" / "court" / "kubo_identity.key").read_text()
        ).peer_id
        == court_peer
    )
    assert (g5 / "depts" / "COURT" / "subject.key").read_text() == (g5 / "subject.key").read_text()
    assert perms.read_text() == perms_before  # deployed: the chain decides from now on
    doc = compose.build_compose(orgs5)
    assert "broker-court" in doc["services"] and "rpc-court" in doc["services"]["ops"]["networks"]
    assert read_env(g5)["BROKER_PORT_COURT"] == "8447"

    # docker/add-department.sh's chain steps, with `ops` as a local govshare on anvil.
    res = subprocess.run(
        [str(DOCKER / "add-department.sh"), "court", "--only", "admit,allowlists"],
        capture_output=True,
        text=True,
        env=env_with(
            GOVSHARE_GENERATED_DIR=str(g5),
            GOVSHARE_OPS=f"env GOVSHARE_HOME={g5}",
            GOVSHARE_OPS_GENERATED=str(g5),
            GOVSHARE_OPS_RPC=chain.url,
        ),
        check=False,
        timeout=120,
    )
    assert res.returncode == 0, res.stdout + res.stderr
    assert "COURT is a member" in res.stdout
    reg = Ledger.from_deployment(deployed, chain.url).registry
    entry = reg.get_department("COURT")
    prof = load_profile_dir(g5 / "depts" / "COURT")
    assert entry.active and entry.broker.lower() == prof.broker_address.lower()
    lists = al.parse_permissions_config(perms.read_text())
    assert prof.broker_address.lower() in lists.accounts
    assert prof.admin_address.lower() in lists.accounts
    assert nodes[-1]["enode"] in lists.nodes and len(lists.nodes) == 5
    # Run again: nothing left to do on chain.
    again = subprocess.run(
        [str(DOCKER / "add-department.sh"), "COURT", "--only", "admit"],
        capture_output=True,
        text=True,
        env=env_with(
            GOVSHARE_GENERATED_DIR=str(g5),
            GOVSHARE_OPS=f"env GOVSHARE_HOME={g5}",
            GOVSHARE_OPS_GENERATED=str(g5),
            GOVSHARE_OPS_RPC=chain.url,
        ),
        check=False,
        timeout=60,
    )
    assert again.returncode == 0 and "already an active member" in again.stdout
