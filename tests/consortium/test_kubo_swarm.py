"""What ``govshare consortium kubo`` writes, run for real: three Kubo daemons
(the pinned build) take its swarm key, peer identities and config fragment — its
addresses moved to loopback ports, nothing else changed — find each other by
peering alone, and share blocks by bitswap; a node without the key, or with
another key, cannot join."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import httpx
import pytest

import engines
from govshare.consortium import kubo as kubo_cfg
from integration.world import GOVSHARE

CODES = ("TAX", "MARKET", "COURT")


def _loopback(fragment: dict[str, Any], port: int, others: dict[str, int]) -> dict[str, Any]:
    """The fragment with each /dns4/HOST/tcp/4001 a member dials replaced by
    that member's loopback port (the compose network's names do not resolve here)."""
    out = {k: v for k, v in fragment.items() if k != "Addresses.API"}  # its own port stays
    out["Addresses.Swarm"] = [f"/ip4/127.0.0.1/tcp/{port}"]
    out["Addresses.Announce"] = [f"/ip4/127.0.0.1/tcp/{port}"]
    out["Peering.Peers"] = [
        {"ID": p["ID"], "Addrs": [f"/ip4/127.0.0.1/tcp/{others[p['ID']]}"]}
        for p in fragment["Peering.Peers"]
    ]
    out["Bootstrap"] = [
        f"/ip4/127.0.0.1/tcp/{others[p['ID']]}/p2p/{p['ID']}" for p in fragment["Peering.Peers"]
    ]
    return out


@pytest.fixture(scope="module")
def swarm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, engines.KuboDaemon]]:
    try:
        engines.tool("kubo", "ipfs")
    except engines.EngineUnavailable as exc:
        pytest.skip(str(exc))
    out = tmp_path_factory.mktemp("net")
    done = subprocess.run(
        [str(GOVSHARE), "consortium", "kubo", "--names", ",".join(CODES), "--out", str(out)],
        env={**os.environ, "GOVSHARE_HOME": str(out / "home")},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    base = out / "kubo"
    key = (base / "swarm.key").read_text()
    peers = {
        r["name"]: r["peer_id"] for r in json.loads((base / "peers.json").read_text())["nodes"]
    }
    daemons = {c: engines.KuboDaemon(out / f"d-{c.lower()}", swarm_key=key) for c in CODES}
    ports = {peers[c]: daemons[c].swarm_port for c in CODES}
    for c, d in daemons.items():
        folder = base / c.lower()
        fragment = json.loads((folder / "config.json").read_text())
        d.extra_config.update(
            {
                **_loopback(fragment, d.swarm_port, ports),
                "Identity.PeerID": peers[c],
                "Identity.PrivKey": (folder / kubo_cfg.SECRET_IDENTITY).read_text().strip(),
            }
        )
    with ExitStack() as stack:
        for d in daemons.values():
            stack.enter_context(engines.running(d))
        yield daemons


def peers_of(d: engines.KuboDaemon) -> set[str]:
    return {p["Peer"] for p in (d.rpc("swarm/peers").json().get("Peers") or [])}


def test_the_members_find_each_other_by_peering_and_share_blocks(
    swarm: dict[str, engines.KuboDaemon],
) -> None:
    ids = {c: d.peer_id for c, d in swarm.items()}
    for c, d in swarm.items():
        assert d.peer_id == ids[c]  # the identity the generator wrote
        others = {i for k, i in ids.items() if k != c}
        engines.poll(lambda d=d, others=others: others <= peers_of(d) or None,
                     timeout=60, what=f"{c}'s peering")  # fmt: skip
    cid = swarm["TAX"].rpc("block/put", files={"data": ("b", b"a manifest")}).json()["Key"]
    got = swarm["COURT"].rpc("block/get", arg=cid, timeout="30s").content
    assert got == b"a manifest"


@pytest.mark.parametrize("key", ["none", "another"])
def test_a_node_without_the_swarm_key_cannot_join(
    swarm: dict[str, engines.KuboDaemon], tmp_path: Path, key: str
) -> None:
    other = None
    if key == "another":
        other = kubo_cfg.format_swarm_key(kubo_cfg.generate_swarm_key())
    outsider = engines.KuboDaemon(tmp_path / "outsider", swarm_key=other)
    with engines.running(outsider):
        with pytest.raises((engines.EngineFailed, httpx.HTTPStatusError)):
            outsider.rpc("swarm/connect", arg=swarm["TAX"].swarm_addr, timeout="5s")
        assert swarm["TAX"].peer_id not in peers_of(outsider)
        assert outsider.peer_id not in peers_of(swarm["TAX"])
