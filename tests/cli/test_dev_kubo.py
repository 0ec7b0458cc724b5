"""``govshare dev up --store kubo``: the local consortium with one real Kubo
daemon (the pinned build) per department, in one private swarm, started and
stopped by ``dev up`` and ``dev down`` and kept across them. The demo's story
from the command line: publish, a request for the batched record (its manifest
crosses the swarm), approval, fetch; then down, up again, and the same record
fetched again; no daemon left behind."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

import engines
from cli.conftest import Cli
from govshare.chain.devnode import free_port

pytestmark = pytest.mark.integration

ENV = {"GOVSHARE_PASSWORD": "kubo-dev-password", "GOVSHARE_ADMIN_PASSWORD": "kubo-dev-admin"}


@pytest.fixture(scope="module")
def cli(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cli]:
    try:
        kubo = engines.tool("kubo", "ipfs")
    except engines.EngineUnavailable as exc:
        pytest.skip(str(exc))
    c = Cli(tmp_path_factory.mktemp("consortium") / "home", {**ENV, "GOVSHARE_KUBO": str(kubo)})
    for name in ("GOVSHARE_TOKEN", "GOVSHARE_DEPT", "GOVSHARE_PASSWORD_FILE", "GOVSHARE_RPC"):
        c.env.pop(name, None)
    try:
        yield c
    finally:
        c("dev", "down")


def daemons_of(home: Path) -> list[int]:
    """The pids of ipfs daemons whose repo is in this home."""
    out = subprocess.run(["pgrep", "-f", "--", "--repo-dir"], capture_output=True, text=True).stdout
    pids = []
    for pid in (int(p) for p in out.split()):
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            continue
        if str(home).encode() in cmdline:
            pids.append(pid)
    return pids


def test_dev_up_with_kubo_stores_runs_the_story_and_resumes(cli: Cli, tmp_path: Path) -> None:
    up = cli.ok(
        "dev", "up", "--store", "kubo", "--departments", "TAX,MARKET", "--scrypt-n", "1024",
        "--chain-port", str(free_port()), "--base-port", str(free_port()), "--json",
    ).json()  # fmt: skip
    assert up["store"] == "kubo"
    assert set(up["kubo"]) == {"TAX", "MARKET"} and all(n["running"] for n in up["kubo"].values())
    assert len(daemons_of(cli.home)) == 2

    data = os.urandom(30_000)
    src = tmp_path / "clearance.pdf"
    src.write_bytes(data)
    pub = cli.ok(
        "record", "publish", str(src), "--category", "tax-clearance", "--dept", "TAX", "--json"
    ).json()
    rid = pub["record_id"]
    # the ciphertext and the batch manifest are pinned on TAX's node
    tax_node = up["kubo"]["TAX"]["url"]
    pins = httpx.post(f"{tax_node}/api/v0/pin/ls", params={"type": "recursive"}).json()["Keys"]
    assert pub["cid"] in pins and pub["batch"]["manifest_cid"] in pins

    req = cli.ok(
        "request", "create", "--owner", "TAX", "--record", rid, "--purpose", "licence",
        "--dept", "MARKET", "--json",
    ).json()  # fmt: skip
    cli.ok("grant", "approve", str(req["request_id"]), "--dept", "TAX", "--expires", "1d",
           "--max-uses", "3", "-y")  # fmt: skip
    out = tmp_path / "got.pdf"
    cli.ok("record", "fetch", rid, "-o", str(out), "--dept", "MARKET")
    assert out.read_bytes() == data

    down = cli.ok("dev", "down", "--json").json()
    assert sorted(down["kubo_stopped"]) == ["MARKET", "TAX"]
    assert daemons_of(cli.home) == []

    again = cli.ok("dev", "up", "--json").json()  # resumes: same nodes, same store
    assert again["store"] == "kubo" and again["resumed"] is True
    assert again["kubo"]["TAX"]["url"] == tax_node
    out2 = tmp_path / "again.pdf"
    cli.ok("record", "fetch", rid, "-o", str(out2), "--dept", "MARKET")
    assert out2.read_bytes() == data

    # a home's store is chosen once
    refused = cli.fails("dev", "up", "--store", "local")
    assert "kubo stores" in refused.output
