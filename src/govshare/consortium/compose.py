"""The Docker Compose file for an N-organisation consortium on one Docker host.

Per organisation: a Besu QBFT validator, a Kubo node in the private swarm and a
govshare broker; for the whole consortium a one-shot ``prepare`` service (copies
the generated secrets, each department's profile among them, into per-service
volumes owned by each image's user: Compose bind-mounts file secrets with the
host's owner and mode, which the non-root images could not read), a one-shot
``deploy`` service (contracts + founders, once) and the operator's ``ops`` tool
(profile ``ops``: only ``docker compose run`` starts it).

Networks are ``internal`` (no route to or from the host) except ``edge``: the
chain RPC (``rpc-<org>``: the org's broker and validator, the deploy service on the
first one, ``ops`` on all), the validators' P2P (``chain``), the swarm (``swarm``)
and each Kubo RPC (``ipfs-<org>``: the org's broker and Kubo only). Only the
brokers publish a port, on ``127.0.0.1`` unless ``BROKER_BIND`` says otherwise.

The YAML is rendered by hand (block style, deterministic) so the runtime needs no
YAML library; the tests parse it back with PyYAML.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from typing import Any

from govshare.consortium.besu import DEFAULT_RPC_PORT, besu_service_host
from govshare.consortium.kubo import API_PORT, kubo_service_host
from govshare.errors import InputError

BESU_IMAGE = "hyperledger/besu:25.11.0"
KUBO_IMAGE = "ipfs/kubo:v0.43.1"
GOVSHARE_IMAGE = "govshare:local"
BROKER_PORT = 8443
BROKER_HOST_PORT_BASE = 8443
# Users inside the images: Besu's and Kubo's images run as uid 1000; ours as 10001.
BESU_UID = 1000
KUBO_UID = 1000
GOVSHARE_UID = 10001
DEFAULT_ORGS = ("TAX", "MARKET", "HEALTH", "TRANSPORT")
_ORG_RE = re.compile(r"^[A-Za-z][A-Za-z0-9]{0,15}$")

# Seconds a broker waits for its validator at start-up (`govshare serve --wait-chain`).
BROKER_WAIT_CHAIN = 120
BROKER_START = (
    'export GOVSHARE_KUBO_TOKEN="$$(cat /secrets/kubo_api_token)" && '
    f"exec govshare serve --host 0.0.0.0 --port {BROKER_PORT} --wait-chain {BROKER_WAIT_CHAIN}"
)
KUBO_HEALTHCHECK = (
    # busybox wget in the Kubo image; the RPC API answers POST only.
    'wget -q -O /dev/null --post-data= --header "Authorization: Bearer '
    f'$$(cat /secrets/kubo_api_token)" http://127.0.0.1:{API_PORT}/api/v0/id'
)
# Where the containers see things.
GOVSHARE_HOME = "/var/lib/govshare"
SECRETS = "/secrets"
DEPLOYMENT_DIR = "/deployment"
DEPLOYMENT_FILE = f"{DEPLOYMENT_DIR}/deployment.json"
GENERATED = "/generated"
# The ops service copies the deployment file into the generated folder (its govshare
# home, where the departments' profiles are) before running the command it is given.
OPS_ENTRYPOINT = (
    f'if [ -s {DEPLOYMENT_FILE} ]; then cp {DEPLOYMENT_FILE} "$$GOVSHARE_HOME/deployment.json"; '
    'fi; exec "$$@"'
)
BESU_HEALTHCHECK = (
    # The Besu image has bash but no curl: ask the RPC's /liveness over /dev/tcp.
    "exec 3<>/dev/tcp/127.0.0.1/8545 && "
    'printf "GET /liveness HTTP/1.0\\r\\nHost: localhost\\r\\n\\r\\n" >&3 && '
    'grep -q "200 OK" <&3'
)


def majority(n: int) -> int:
    """The default approval threshold: more than half of ``n`` departments."""
    return n // 2 + 1


def validate_orgs(orgs: Sequence[str]) -> list[str]:
    """Organisation codes: letters and digits, starting with a letter, unique."""
    out = [o.strip().upper() for o in orgs if o.strip()]
    for o in out:
        if not _ORG_RE.match(o):
            raise InputError(
                f"Organisation code {o!r}: use 1-16 letters or digits, starting with a letter."
            )
    if len(set(out)) != len(out):
        raise InputError("Organisation codes must be unique.")
    if not out:
        raise InputError("Name at least one organisation.")
    return out


def _healthcheck(test: list[str], start: str = "20s") -> dict[str, Any]:
    return {
        "test": test,
        "interval": "10s",
        "timeout": "5s",
        "retries": 12,
        "start_period": start,
    }


def build_compose(
    orgs: Sequence[str], base: str = ".", generated: str | None = None
) -> dict[str, Any]:
    """The compose model. ``base`` is the path from the compose file to ``docker/``,
    ``generated`` the path to the generated files (default ``base/generated``)."""
    codes = validate_orgs(orgs)
    gen = generated or f"{base}/generated"
    build = {"context": f"{base}/..", "dockerfile": "docker/Dockerfile"}
    first = codes[0].lower()
    services: dict[str, Any] = {}
    volumes: dict[str, Any] = {}
    networks: dict[str, Any] = {
        "chain": {"internal": True},
        "swarm": {"internal": True},
        "edge": {},
    }

    prepare_volumes = [
        f"{base}/prepare-volumes.sh:/docker/prepare-volumes.sh:ro",
        f"{gen}:/generated:ro",
        "operator-secrets:/vol/operator-secrets",
        "deployment:/vol/deployment",
    ]
    volumes["operator-secrets"] = {}
    volumes["deployment"] = {}
    for code in codes:
        o = code.lower()
        for v in (
            f"besu-{o}-data",
            f"besu-{o}-secrets",
            f"kubo-{o}-data",
            f"kubo-{o}-secrets",
            f"broker-{o}-data",
            f"broker-{o}-secrets",
        ):
            volumes[v] = {}
            prepare_volumes.append(f"{v}:/vol/{v}")
        networks[f"rpc-{o}"] = {"internal": True}
        networks[f"ipfs-{o}"] = {"internal": True}

    services["prepare"] = {
        "build": build,
        "image": GOVSHARE_IMAGE,
        "user": "0:0",
        "entrypoint": ["/bin/sh", "/docker/prepare-volumes.sh"],
        "command": list(codes),
        "volumes": prepare_volumes,
        "network_mode": "none",
        "restart": "no",
    }
    done = {"prepare": {"condition": "service_completed_successfully"}}

    for i, code in enumerate(codes):
        o = code.lower()
        besu = besu_service_host(code)
        kubo = kubo_service_host(code)
        services[besu] = {
            "image": BESU_IMAGE,
            "command": ["--config-file=/config/config.toml"],
            "volumes": [
                f"besu-{o}-data:/opt/besu/data",
                f"besu-{o}-secrets:/secrets:ro",
                f"{gen}/besu/{o}/config.toml:/config/config.toml:ro",
                f"{gen}/genesis.json:/config/genesis.json:ro",
                # A directory, not the file: an atomic rename of a regenerated
                # allowlist stays visible inside the container.
                f"{gen}/permissions:/config/permissions:ro",
            ],
            "networks": ["chain", f"rpc-{o}"],
            "depends_on": dict(done),
            "healthcheck": _healthcheck(["CMD", "bash", "-c", BESU_HEALTHCHECK], "60s"),
            "restart": "unless-stopped",
        }
        services[kubo] = {
            "image": KUBO_IMAGE,
            "environment": {"LIBP2P_FORCE_PNET": "1"},
            "volumes": [
                f"kubo-{o}-data:/data/ipfs",
                f"kubo-{o}-secrets:/secrets:ro",
                f"{gen}/kubo/{o}/container-init.d:/container-init.d:ro",
            ],
            "networks": ["swarm", f"ipfs-{o}"],
            "depends_on": dict(done),
            # With the broker's own token, on a path it may use: the same way in.
            "healthcheck": _healthcheck(["CMD", "sh", "-c", KUBO_HEALTHCHECK]),
            "restart": "unless-stopped",
        }
        services[f"broker-{o}"] = {
            "build": build,
            "image": GOVSHARE_IMAGE,
            # The Kubo token goes from its secret file into the broker's own environment
            # only ($$ escapes Compose interpolation); the broker listens on all
            # interfaces inside its container, the host sees only the published port.
            "command": ["/bin/sh", "-c", BROKER_START],
            "environment": {
                "GOVSHARE_HOME": GOVSHARE_HOME,
                "GOVSHARE_DEPT": code,
                "GOVSHARE_RPC": f"http://{besu}:{DEFAULT_RPC_PORT}",
                "GOVSHARE_DEPLOYMENT_FILE": DEPLOYMENT_FILE,
                "GOVSHARE_STORE": f"kubo:http://{kubo}:{API_PORT}",
                "GOVSHARE_SECRETS_DIR": SECRETS,
            },
            # Plain HTTP (serve has no TLS options): on 127.0.0.1 unless BROKER_BIND says
            # otherwise; put a TLS-terminating proxy in front for other machines.
            "ports": [
                f"${{BROKER_BIND:-127.0.0.1}}:${{BROKER_PORT_{code}:-{BROKER_HOST_PORT_BASE + i}}}"
                f":{BROKER_PORT}"
            ],
            "volumes": [
                f"broker-{o}-data:{GOVSHARE_HOME}",
                f"broker-{o}-secrets:{SECRETS}:ro",
                f"deployment:{DEPLOYMENT_DIR}:ro",
            ],
            "networks": [f"rpc-{o}", f"ipfs-{o}", "edge"],
            "depends_on": {
                besu: {"condition": "service_healthy"},
                kubo: {"condition": "service_healthy"},
                "deploy": {"condition": "service_completed_successfully"},
            },
            # Ready: the broker answers and its database, chain and store do too.
            "healthcheck": _healthcheck(
                [
                    "CMD",
                    "python",
                    "-c",
                    "import urllib.request; "
                    f"urllib.request.urlopen('http://127.0.0.1:{BROKER_PORT}/readyz', timeout=4)",
                ],
                "30s",
            ),
            "restart": "unless-stopped",
        }

    rpc = f"http://{besu_service_host(codes[0])}:{DEFAULT_RPC_PORT}"
    home_deployment = f"{GOVSHARE_HOME}/deployment.json"
    services["deploy"] = {
        "build": build,
        "image": GOVSHARE_IMAGE,
        # Once: skipped when the deployment volume already holds a deployment; waits
        # for the validators to produce blocks first.
        "entrypoint": ["/bin/sh", "/docker/deploy-once.sh"],
        "command": [
            "govshare",
            "--home",
            GOVSHARE_HOME,
            "consortium",
            "deploy",
            "--rpc",
            rpc,
            "--founders",
            f"{GENERATED}/founders.json",
            "--threshold",
            f"${{GOVSHARE_THRESHOLD:-{majority(len(codes))}}}",
            "--key-file",
            f"{SECRETS}/deployer.key",
            "--out",
            home_deployment,
        ],
        "environment": {
            "GOVSHARE_RPC": rpc,
            "GOVSHARE_DEPLOYMENT_FILE": home_deployment,
        },
        "volumes": [
            f"{base}/deploy-once.sh:/docker/deploy-once.sh:ro",
            f"operator-secrets:{SECRETS}:ro",
            f"deployment:{GOVSHARE_HOME}",
            f"{gen}/founders.json:{GENERATED}/founders.json:ro",
        ],
        "networks": [f"rpc-{first}"],
        "depends_on": {
            "prepare": {"condition": "service_completed_successfully"},
            **{besu_service_host(c): {"condition": "service_healthy"} for c in codes},
        },
        "restart": "no",
    }
    # The operator's tool (not started by `up`): `docker compose run --rm ops govshare …`
    # with the generated folder as its govshare home (every department's profile, the
    # administrators' keystores and passwords), as the operator's own uid (the files are
    # 0600), on every validator's RPC network.
    services["ops"] = {
        "build": build,
        "image": GOVSHARE_IMAGE,
        "profiles": ["ops"],
        "user": "${OPERATOR_UID:-1000}:${OPERATOR_GID:-1000}",
        "entrypoint": ["/bin/sh", "-c", OPS_ENTRYPOINT, "ops"],
        "command": ["govshare", "--help"],
        "environment": {
            "GOVSHARE_HOME": GENERATED,
            "GOVSHARE_RPC": rpc,
        },
        "volumes": [f"{gen}:{GENERATED}", f"deployment:{DEPLOYMENT_DIR}:ro"],
        "networks": [f"rpc-{c.lower()}" for c in codes],
        "restart": "no",
    }
    return {"name": "govshare", "services": services, "networks": networks, "volumes": volumes}


# --- a small, deterministic YAML emitter (block style) ------------------------------

_PLAIN_RE = re.compile(r"^[A-Za-z0-9_./-][A-Za-z0-9_./:-]*$")
_YAML_WORDS = {"true", "false", "yes", "no", "on", "off", "null", "y", "n", "~"}


def _scalar(v: Any) -> str:
    if v is True:
        return "true"
    if v is False:
        return "false"
    if v is None:
        return "null"
    if isinstance(v, int):
        return str(v)
    s = str(v)
    if _PLAIN_RE.match(s) and s.lower() not in _YAML_WORDS and not _looks_numeric(s):
        return s
    return json.dumps(s)  # a JSON string is a valid YAML double-quoted scalar


def _looks_numeric(s: str) -> bool:
    try:
        float(s)
    except ValueError:
        return bool(re.match(r"^\d+(:\d+)+$", s))  # YAML 1.1 sexagesimal, e.g. 8443:8443
    return True


def _emit(value: Any, indent: int, out: list[str]) -> None:
    pad = "  " * indent
    if isinstance(value, dict):
        for k, v in value.items():
            key = _scalar(k)
            if isinstance(v, dict | list) and v:
                out.append(f"{pad}{key}:")
                _emit(v, indent + 1, out)
            elif isinstance(v, dict | list):
                out.append(f"{pad}{key}: {'{}' if isinstance(v, dict) else '[]'}")
            else:
                out.append(f"{pad}{key}: {_scalar(v)}")
    elif isinstance(value, list):
        for item in value:
            if isinstance(item, dict | list) and item:
                raise InputError("nested collections in lists are not used in compose files here")
            out.append(f"{pad}- {_scalar(item)}")
    else:
        out.append(f"{pad}{_scalar(value)}")


def render_compose(orgs: Sequence[str], base: str = ".", generated: str | None = None) -> str:
    header = [
        "# govshare consortium: Besu QBFT validators, a private Kubo swarm and one broker",
        "# per organisation. Generated by `govshare consortium compose`; run it through",
        "# scripts/consortium_up.sh, which first generates docker/generated/.",
        "",
    ]
    out: list[str] = []
    _emit(build_compose(orgs, base, generated), 0, out)
    return "\n".join(header + out) + "\n"
