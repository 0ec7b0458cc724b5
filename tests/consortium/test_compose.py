"""docker/compose.yml, docker/Dockerfile and the scripts, checked structurally (no Docker
engine here): pinned images, healthchecks, volumes, internal networks, no chain or Kubo
RPC port on the host, secrets mounted from volumes and never baked in; the deploy
service's flags and the brokers' environment exactly what `govshare consortium deploy`
and `govshare serve` take. (tests/consortium/test_up_script.py runs what they run.)"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import click
import pytest
import yaml

from govshare.broker.subjects import SUBJECT_KEY_FILE
from govshare.cli.consortium import deploy_cmd
from govshare.cli.serve import PASSWORD_FILE
from govshare.consortium import compose
from govshare.profile import ADMIN_KEYSTORE, BROKER_KEYSTORE, CONFIG, HPKE_KEY
from govshare.settings import Settings, env_name

ROOT = Path(__file__).resolve().parents[2]
DOCKER = ROOT / "docker"
COMPOSE_FILE = DOCKER / "compose.yml"
UP = ROOT / "scripts" / "consortium_up.sh"
ONE_SHOT = {"prepare", "deploy", "ops"}  # ops: the operator's `docker compose run` tool
SECRET_NAMES = re.compile(r"(^|/)(key|deployer\.key|swarm\.key|kubo_identity\.key|kubo_api_token)$")


def load(text: str) -> dict[str, Any]:
    doc = yaml.safe_load(text)
    assert isinstance(doc, dict)
    return doc


@pytest.fixture(scope="module")
def committed() -> dict[str, Any]:
    return load(COMPOSE_FILE.read_text())


def test_committed_file_is_what_the_generator_writes() -> None:
    assert COMPOSE_FILE.read_text() == compose.render_compose(compose.DEFAULT_ORGS)


def test_yaml_emitter_round_trips_the_model() -> None:
    for orgs in (compose.DEFAULT_ORGS, ("A", "B", "C", "D", "E")):
        assert load(compose.render_compose(orgs)) == compose.build_compose(orgs)


def _image_pinned(image: str) -> bool:
    name, _, tag = image.rpartition(":")
    return bool(name) and tag not in ("", "latest") and "/" not in tag


@pytest.mark.parametrize("orgs", [compose.DEFAULT_ORGS, ("A", "B", "C", "D", "E", "F", "G")])
def test_every_service_is_pinned_healthy_and_persistent(orgs: tuple[str, ...]) -> None:
    doc = compose.build_compose(orgs)
    services = doc["services"]
    assert len(services) == 3 * len(orgs) + 3
    for name, svc in services.items():
        assert "build" in svc or _image_pinned(svc["image"]), name
        if "build" not in svc:
            assert svc["image"] in (compose.BESU_IMAGE, compose.KUBO_IMAGE)
        if name in ONE_SHOT:
            assert svc["restart"] == "no"
        else:
            hc = svc["healthcheck"]
            assert hc["test"][0] == "CMD" and hc["retries"] > 0, name
            assert svc["restart"] == "unless-stopped"
        named = [v.split(":")[0] for v in svc.get("volumes", []) if not v.startswith(".")]
        assert named, f"{name} keeps no state in a named volume"
        assert all(v in doc["volumes"] for v in named)
    # The one-shot services are waited for, so a failure stops what depends on them.
    for name, svc in services.items():
        for dep, cond in svc.get("depends_on", {}).items():
            want = "service_completed_successfully" if dep in ONE_SHOT else "service_healthy"
            assert cond == {"condition": want}, (name, dep)


def test_only_broker_ports_are_published(committed: dict[str, Any]) -> None:
    published = {n: s["ports"] for n, s in committed["services"].items() if "ports" in s}
    assert set(published) == {f"broker-{o.lower()}" for o in compose.DEFAULT_ORGS}
    for ports in published.values():
        (mapping,) = ports
        assert mapping.endswith(f":{compose.BROKER_PORT}")
    for name, svc in committed["services"].items():
        if name.startswith(("besu-", "kubo-")):
            assert "ports" not in svc and "expose" not in svc
            assert svc.get("network_mode") != "host"


def test_rpc_networks_are_internal_and_private_to_one_org(committed: dict[str, Any]) -> None:
    nets = committed["networks"]
    assert nets.pop("edge") == {}  # the brokers' way out: the only non-internal network
    assert all(net == {"internal": True} for net in nets.values())
    services = committed["services"]
    for org in (o.lower() for o in compose.DEFAULT_ORGS):
        users_of_rpc = {n for n, s in services.items() if f"rpc-{org}" in s.get("networks", [])}
        assert users_of_rpc <= {f"besu-{org}", f"broker-{org}", "deploy", "ops"}
        users_of_ipfs = {n for n, s in services.items() if f"ipfs-{org}" in s.get("networks", [])}
        assert users_of_ipfs == {f"kubo-{org}", f"broker-{org}"}
        assert "edge" not in services[f"besu-{org}"]["networks"]
        assert "edge" not in services[f"kubo-{org}"]["networks"]
    assert services["prepare"]["network_mode"] == "none"


def test_secrets_are_mounted_read_only_and_never_in_env_or_images(committed: dict[str, Any]):
    services = committed["services"]
    for name, svc in services.items():
        for key, value in svc.get("environment", {}).items():
            assert not re.search(r"(?i)(secret|priv|token|password)", f"{key}={value}") or (
                key == "GOVSHARE_SECRETS_DIR"
            ), (name, key)
        for v in svc.get("volumes", []):
            src = v.split(":")[0]
            if "secrets" in src and name != "prepare":
                assert v.endswith(":ro"), (name, v)
            # Nothing secret is bind-mounted straight from the host into a service.
            assert not SECRET_NAMES.search(src), (name, v)
    kubo = services["kubo-tax"]
    assert kubo["environment"]["LIBP2P_FORCE_PNET"] == "1"
    assert "kubo-tax-secrets:/secrets:ro" in kubo["volumes"]
    assert "besu-tax-secrets:/secrets:ro" in services["besu-tax"]["volumes"]
    assert "broker-tax-secrets:/secrets:ro" in services["broker-tax"]["volumes"]
    assert "/secrets/kubo_api_token" in services["broker-tax"]["command"][-1]
    # The prepare script fills exactly those volumes, from the generated files.
    script = (DOCKER / "prepare-volumes.sh").read_text()
    for needle in (
        '"$V/besu-$org-secrets/key"',
        '"$V/kubo-$org-secrets/swarm.key"',
        '"$V/broker-$org-secrets/kubo_api_token"',
        'install -m "${4:-0400}"',
    ):
        assert needle in script


def test_dockerfile_is_slim_non_root_and_copies_no_secret() -> None:
    text = (DOCKER / "Dockerfile").read_text()
    lines = [ln.strip() for ln in text.splitlines() if ln.strip() and not ln.startswith("#")]
    assert lines[0] == "FROM python:3.11-slim"
    users = [ln.split()[1] for ln in lines if ln.startswith("USER ")]
    assert users and users[-1] not in ("root", "0")
    copies = [ln for ln in lines if ln.startswith(("COPY", "ADD"))]
    assert copies == ["COPY pyproject.toml README.md ./", "COPY src ./src"]
    assert "generated" not in text.replace("# No key, token or generated file", "")
    ignore = [
        ln
        for ln in (DOCKER / "Dockerfile.dockerignore").read_text().splitlines()
        if ln and not ln.startswith("#")
    ]
    assert ignore[0] == "*" and "!src/" in ignore  # nothing but the sources in the context


def test_shell_scripts_parse() -> None:
    for script in (UP, DOCKER / "prepare-volumes.sh"):
        shell = "bash" if script == UP else "sh"
        if shutil.which(shell) is None:
            pytest.skip(f"no {shell}")
        res = subprocess.run(
            [shell, "-n", str(script)], capture_output=True, text=True, check=False
        )
        assert res.returncode == 0, res.stderr
        assert os.access(script, os.X_OK)


def test_up_script_fails_clearly_without_docker(tmp_path: Path) -> None:
    if shutil.which("bash") is None:
        pytest.skip("no bash")
    empty = tmp_path / "bin"
    empty.mkdir()
    for tool in ("dirname", "bash"):
        found = shutil.which(tool)
        if found:
            (empty / tool).symlink_to(found)
    res = subprocess.run(
        [str(UP)],
        capture_output=True,
        text=True,
        env={"PATH": str(empty)},
        check=False,
        timeout=60,
    )
    assert res.returncode == 3
    assert "Docker is not installed" in res.stderr and "--generate-only" in res.stderr


def _option(cmd: click.Command, flag: str) -> click.Option:
    for p in cmd.params:
        if isinstance(p, click.Option) and flag in p.opts:
            return p
    raise AssertionError(f"{cmd.name} has no {flag}")


def _flags(argv: list[str]) -> dict[str, str]:
    return {a: argv[i + 1] for i, a in enumerate(argv) if a.startswith("--") and i + 1 < len(argv)}


@pytest.mark.parametrize("orgs", [compose.DEFAULT_ORGS, ("A1", "B1", "C1", "D1", "E1")])
def test_deploy_service_passes_every_required_flag(orgs: tuple[str, ...]) -> None:
    doc = compose.build_compose(orgs)
    svc = doc["services"]["deploy"]
    argv = svc["command"]
    assert argv[:5] == ["govshare", "--home", compose.GOVSHARE_HOME, "consortium", "deploy"]
    flags = _flags(argv[5:])
    for p in deploy_cmd.params:  # every required option of the real command is given
        if isinstance(p, click.Option) and p.required:
            assert any(o in flags for o in p.opts), p.opts
    assert set(flags) <= {o for p in deploy_cmd.params for o in p.opts}
    majority = len(orgs) // 2 + 1
    assert flags["--threshold"] == f"${{GOVSHARE_THRESHOLD:-{majority}}}"
    assert flags["--founders"] == "/generated/founders.json"
    assert flags["--key-file"] == "/secrets/deployer.key"
    assert flags["--rpc"] == svc["environment"]["GOVSHARE_RPC"]
    assert flags["--out"] == svc["environment"]["GOVSHARE_DEPLOYMENT_FILE"]
    # The deployment lands in the volume the brokers read it from.
    mounts = dict(v.split(":")[:2] for v in svc["volumes"])
    assert mounts["deployment"] == compose.GOVSHARE_HOME
    assert flags["--out"].startswith(compose.GOVSHARE_HOME + "/")
    assert mounts["operator-secrets"] == "/secrets"
    assert svc["entrypoint"] == ["/bin/sh", "/docker/deploy-once.sh"]
    assert mounts["./deploy-once.sh"] == "/docker/deploy-once.sh"
    # It waits for every validator (QBFT needs a quorum) and for the secrets.
    besus = {f"besu-{o.lower()}" for o in orgs}
    assert set(svc["depends_on"]) == besus | {"prepare"}
    for o in orgs:
        broker = doc["services"][f"broker-{o.lower()}"]
        assert broker["depends_on"]["deploy"] == {"condition": "service_completed_successfully"}


def test_brokers_environment_is_what_serve_reads() -> None:
    doc = compose.build_compose(compose.DEFAULT_ORGS)
    # serve reads its environment through the one Settings object: every name the
    # compose file sets must be one of its settings (a misspelt name would be ignored).
    envvars = {env_name(f) for f in Settings.model_fields}
    assert "GOVSHARE_SECRETS_DIR" in envvars and "GOVSHARE_HOME" in envvars
    assert "GOVSHARE_KUBO_TOKEN" in envvars  # set by the start command below
    for org in compose.DEFAULT_ORGS:
        o = org.lower()
        svc = doc["services"][f"broker-{o}"]
        env = svc["environment"]
        assert set(env) <= envvars, set(env) - envvars
        assert env["GOVSHARE_DEPT"] == org
        assert env["GOVSHARE_RPC"] == f"http://besu-{o}:8545"
        assert env["GOVSHARE_STORE"] == f"kubo:http://kubo-{o}:5001"
        mounts = {v.split(":")[1]: v.split(":")[0] for v in svc["volumes"]}
        assert mounts[env["GOVSHARE_SECRETS_DIR"]] == f"broker-{o}-secrets"
        assert mounts[env["GOVSHARE_HOME"]] == f"broker-{o}-data"
        dep_dir = env["GOVSHARE_DEPLOYMENT_FILE"].rsplit("/", 1)[0]
        assert mounts[dep_dir] == "deployment"
        # Reaches its own validator and Kubo node, by name, on their networks.
        assert {f"rpc-{o}", f"ipfs-{o}"} <= set(svc["networks"])
        # The Kubo bearer token from the secrets volume; waits for the chain.
        start = svc["command"][-1]
        assert (
            f'GOVSHARE_KUBO_TOKEN="$$(cat {env["GOVSHARE_SECRETS_DIR"]}/kubo_api_token)"' in start
        )
        assert "exec govshare serve " in start and "--wait-chain" in start
        assert f"--port {compose.BROKER_PORT}" in start
        assert "/readyz" in svc["healthcheck"]["test"][-1]
        (port,) = svc["ports"]
        assert port.startswith("${BROKER_BIND:-127.0.0.1}:")


def test_prepare_copies_what_serve_needs_and_not_the_admin_key() -> None:
    script = (DOCKER / "prepare-volumes.sh").read_text()
    m = re.search(r'^BROKER_FILES="([^"]+)"$', script, re.M)
    assert m is not None
    files = set(m.group(1).split())
    # What `govshare serve --profile-dir` loads: the profile, its keys, the subject key and
    # the password file it looks for beside them.
    assert files == {CONFIG, BROKER_KEYSTORE, HPKE_KEY, SUBJECT_KEY_FILE, PASSWORD_FILE}
    assert ADMIN_KEYSTORE not in script and "admin.password" not in script
    # The public config.json also goes where `govshare user` looks (HOME/depts/CODE).
    assert '"$V/broker-$org-data/depts/$dept/config.json"' in script
    doc = compose.build_compose(compose.DEFAULT_ORGS)
    assert doc["services"]["prepare"]["command"] == list(compose.DEFAULT_ORGS)


def test_ops_tool_is_not_started_by_up_and_runs_as_the_operator() -> None:
    doc = compose.build_compose(compose.DEFAULT_ORGS)
    ops = doc["services"]["ops"]
    assert ops["profiles"] == ["ops"]  # `docker compose up` leaves it alone
    assert ops["user"] == "${OPERATOR_UID:-1000}:${OPERATOR_GID:-1000}"
    assert ops["environment"]["GOVSHARE_HOME"] == compose.GENERATED
    assert sorted(ops["networks"]) == sorted(f"rpc-{o.lower()}" for o in compose.DEFAULT_ORGS)
    assert "ports" not in ops and "edge" not in ops["networks"]
    assert "deployment:/deployment:ro" in ops["volumes"]
    assert f"cp {compose.DEPLOYMENT_FILE}" in ops["entrypoint"][2]


def test_docs_give_the_commands_the_stack_needs() -> None:
    text = (ROOT / "docs" / "consortium.md").read_text()
    for needle in (
        "scripts/consortium_up.sh",
        "exec broker-tax govshare user add",
        "run --rm ops govshare",
        "docker/add-department.sh COURT",
        "govshare dept propose add COURT --from",
        "govshare dept approve",
        "govshare consortium allowlists --rpc",
        "perm_reloadPermissionsFromFile",
        "qbft_proposeValidatorVote",
        "--threshold",
    ):
        assert needle in text, needle
    assert "/work/" not in text and "/root/" not in text


def test_docker_compose_config_accepts_the_file(tmp_path: Path) -> None:
    docker = shutil.which("docker")
    probe = (
        subprocess.run([docker, "compose", "version"], capture_output=True, check=False)
        if docker
        else None
    )
    if probe is None or probe.returncode != 0:
        pytest.skip("no Docker Compose v2 client here ('docker compose version' failed)")
    gen = tmp_path / "generated"
    env = {**os.environ, "GOVSHARE_GENERATED_DIR": str(gen), "GOVSHARE_SCRYPT_N": "1024"}
    res = subprocess.run([str(UP), "--generate-only", "--orgs", "AA,BB,CC,DD,EE"], env=env,
                         capture_output=True, text=True, check=False)  # fmt: skip
    assert res.returncode == 0, res.stderr
    res = subprocess.run(
        [docker, "compose", "-f", str(gen / "compose.yml"), "--env-file", str(gen / ".env"),
         "config", "--quiet"], capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert res.returncode == 0, res.stderr
