"""docker/compose.yml, docker/Dockerfile and scripts/consortium_up.sh, checked structurally
(no Docker engine here): pinned images, healthchecks, volumes, internal networks, no
chain or Kubo RPC port on the host, secrets mounted from volumes and never baked in."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from govshare.consortium import compose

ROOT = Path(__file__).resolve().parents[2]
DOCKER = ROOT / "docker"
COMPOSE_FILE = DOCKER / "compose.yml"
UP = ROOT / "scripts" / "consortium_up.sh"
ONE_SHOT = {"prepare", "deploy"}
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
    assert len(services) == 3 * len(orgs) + 2
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
        assert users_of_rpc <= {f"besu-{org}", f"broker-{org}", "deploy"}
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
    for needle in ('"/vol/besu-$org-secrets/key"', '"/vol/kubo-$org-secrets/swarm.key"',
                   '"/vol/broker-$org-secrets/kubo_api_token"', "install -m 0400"):  # fmt: skip
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


def test_up_script_generates_everything(tmp_path: Path) -> None:
    if shutil.which("bash") is None:
        pytest.skip("no bash")
    gen = tmp_path / "generated"
    env = {**os.environ, "GOVSHARE_GENERATED_DIR": str(gen)}
    args = [str(UP), "--generate-only", "--orgs", "TAX,MARKET,HEALTH,TRANSPORT,COURT"]
    res = subprocess.run(args, capture_output=True, text=True, env=env, check=False, timeout=120)
    assert res.returncode == 0, res.stderr
    for rel in ("genesis.json", "nodes.json", "kubo/swarm.key", "besu/court/key",
                "permissions/permissions_config.toml", "kubo/court/kubo_api_token", ".env",
                "founders.json", "compose.yml"):  # fmt: skip
        assert (gen / rel).is_file(), rel
    env_text = (gen / ".env").read_text()
    assert "BROKER_PORT_COURT=8447" in env_text
    doc = load((gen / "compose.yml").read_text())
    besu = doc["services"]["besu-court"]
    assert "./besu/court/config.toml:/config/config.toml:ro" in besu["volumes"]
    context = (gen / doc["services"]["broker-court"]["build"]["context"]).resolve()
    assert context == ROOT
    # Re-running keeps the keys.
    before = (gen / "besu" / "tax" / "key").read_text()
    res = subprocess.run(args, capture_output=True, text=True, env=env, check=False, timeout=120)
    assert res.returncode == 0 and "reusing" in res.stdout
    assert (gen / "besu" / "tax" / "key").read_text() == before


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
    env = {**os.environ, "GOVSHARE_GENERATED_DIR": str(gen)}
    res = subprocess.run([str(UP), "--generate-only", "--orgs", "A,B,C,D,E"], env=env,
                         capture_output=True, text=True, check=False)  # fmt: skip
    assert res.returncode == 0, res.stderr
    res = subprocess.run(
        [docker, "compose", "-f", str(gen / "compose.yml"), "--env-file", str(gen / ".env"),
         "config", "--quiet"], capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert res.returncode == 0, res.stderr
