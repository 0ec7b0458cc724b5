"""The real engines the suites build on (``engines.py``): each fixture starts its
engine on loopback, and these smoke tests show it does what the next suites need.

* Kubo: private by construction (no bootstrap, no routing, loopback only) but online.
* PostgreSQL: a private cluster; SQLAlchemy/psycopg connect; the broker's schema
  migrates onto it.
* geth --dev: chain id, blocks every second, the funded developer key, and the
  cancun rules the contracts are compiled for (geth v1.17.10's dev genesis turns
  on Shanghai, Cancun, Prague, Osaka and Bogota at time 0, so cancun's opcodes
  run; the committed contracts also deploy there unchanged).
"""

from __future__ import annotations

import re
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa
from sqlalchemy.exc import OperationalError

import engines

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parent.parent


# --- pins -----------------------------------------------------------------------------------


def test_pins_agree_with_the_provisioning() -> None:
    script = (REPO / "scripts" / "provision_engines.sh").read_text()
    assert re.search(rf"^KUBO_VERSION=v{re.escape(engines.KUBO_VERSION)}\b", script, re.M)
    assert re.search(rf"^GETH_VERSION=v{re.escape(engines.GETH_VERSION)}\b", script, re.M)
    gomod = (REPO / "scripts" / "kubo-build" / "go.mod").read_text()
    assert re.search(rf"\bgithub.com/ipfs/kubo v{re.escape(engines.KUBO_VERSION)}$", gomod, re.M)


@pytest.mark.parametrize(
    ("name", "version", "pinned"),
    [("kubo", engines.kubo_version, engines.KUBO_VERSION), ("geth", engines.geth_version, None)],
)
def test_built_engines_report_the_pinned_version(name: str, version, pinned) -> None:  # type: ignore[no-untyped-def]
    try:
        found = version()
    except engines.EngineUnavailable as exc:
        pytest.skip(str(exc))
    if name == "geth":
        assert found == f"{engines.GETH_VERSION}-stable"
    else:
        assert found == pinned


def test_a_missing_tool_names_the_way_to_build_it(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(engines, "TOOLS", tmp_path)
    monkeypatch.setattr(engines, "TOOLS_BIN", tmp_path / "bin")
    with pytest.raises(engines.EngineUnavailable, match="make setup"):
        engines.tool("kubo", "ipfs")
    (tmp_path / "kubo.unavailable").write_text("no Go toolchain on this machine\n")
    with pytest.raises(engines.EngineUnavailable, match="no Go toolchain"):
        engines.KuboDaemon()


# --- Kubo -----------------------------------------------------------------------------------


def test_kubo_is_private_but_online(kubo_daemon: engines.KuboDaemon) -> None:
    cfg = kubo_daemon.rpc("config/show").json()
    assert cfg["Bootstrap"] == []
    assert cfg["Routing"]["Type"] == "none"
    assert cfg["Discovery"]["MDNS"]["Enabled"] is False
    assert cfg["AutoConf"]["Enabled"] is False
    ident = kubo_daemon.rpc("id").json()
    assert ident["ID"] == kubo_daemon.peer_id
    # Online: the swarm listens (on loopback only), so daemons can peer later.
    assert ident["Addresses"], "the swarm should listen"
    assert all(a.startswith("/ip4/127.0.0.1/tcp/") for a in ident["Addresses"])
    assert kubo_daemon.rpc("swarm/peers").json()["Peers"] in (None, [])
    with pytest.raises(httpx.HTTPStatusError):  # a routing query has no router to ask
        kubo_daemon.rpc("routing/findpeer", arg=ident["ID"], timeout="2s")


def test_two_kubo_daemons_peer_over_loopback(tmp_path: Path) -> None:
    """What the private swarm will build on: one daemon fetches another's block by
    bitswap once they are connected by hand (no routing is involved)."""
    with (
        engines.running(engines.KuboDaemon(tmp_path / "a")) as a,
        engines.running(engines.KuboDaemon(tmp_path / "b")) as b,
    ):
        cid = a.rpc("block/put", files={"data": ("b", b"shared by a")}).json()["Key"]
        b.rpc("swarm/connect", arg=a.swarm_addr)
        got = b.rpc("block/get", arg=cid, timeout="20s").content
        assert got == b"shared by a"


def test_a_port_taken_before_kubo_binds_it_is_chosen_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """free_port() can lose a race with another process; the first start re-picks."""
    import socket

    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    busy = taken.getsockname()[1]
    real = engines.free_port
    ports = iter([busy])
    monkeypatch.setattr(engines, "free_port", lambda host="127.0.0.1": next(ports, None) or real())
    try:
        daemon = engines.KuboDaemon(tmp_path / "k")
    except engines.EngineUnavailable as exc:
        taken.close()
        pytest.skip(str(exc))
    try:
        assert daemon.api_port == busy
        with engines.running(daemon):
            assert daemon.api_port != busy
            assert daemon.rpc("id").json()["ID"] == daemon.peer_id
        assert "address already in use" in daemon.log.read_text()
    finally:
        taken.close()


# --- PostgreSQL -----------------------------------------------------------------------------


def test_postgres_cluster_takes_a_table(postgres_cluster: engines.PostgresCluster) -> None:
    engine = sa.create_engine(postgres_cluster.url())
    try:
        with engine.begin() as conn:
            version = conn.execute(sa.text("SHOW server_version")).scalar_one()
            conn.execute(sa.text("CREATE TABLE smoke (id serial PRIMARY KEY, note text)"))
            conn.execute(sa.text("INSERT INTO smoke (note) VALUES ('hello'), ('world')"))
            rows = conn.execute(sa.text("SELECT note FROM smoke ORDER BY id")).scalars().all()
            listen = conn.execute(sa.text("SHOW listen_addresses")).scalar_one()
    finally:
        engine.dispose()
    assert rows == ["hello", "world"]
    assert listen == "127.0.0.1"
    assert int(str(version).split(".")[0]) >= 13


def test_postgres_databases_are_isolated(postgres_cluster: engines.PostgresCluster) -> None:
    url = postgres_cluster.create_database("isolated_one")
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            tables = conn.execute(
                sa.text("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'")
            ).scalar_one()
    finally:
        engine.dispose()
    assert tables == 0


def test_postgres_refuses_a_wrong_password(postgres_cluster: engines.PostgresCluster) -> None:
    url = postgres_cluster.url().replace(postgres_cluster.password, "wrong-password")
    engine = sa.create_engine(url)
    try:
        with pytest.raises(OperationalError, match="password authentication failed"):
            engine.connect().close()
    finally:
        engine.dispose()


def test_the_broker_schema_migrates_onto_postgres(
    postgres_cluster: engines.PostgresCluster,
) -> None:
    from govshare.broker.db import Database

    db = Database.open(postgres_cluster.create_database("broker_schema"))
    try:
        assert db.revision()
    finally:
        db.close()


# --- geth -----------------------------------------------------------------------------------


def _wait_for(probe, timeout: float = 30.0):  # type: ignore[no-untyped-def]
    return engines.poll(probe, timeout=timeout, what="geth")


def test_geth_dev_answers_and_mines_every_period(geth_dev: engines.GethDevNode) -> None:
    assert int(geth_dev.rpc("eth_chainId"), 16) == engines.GETH_DEV_CHAIN_ID
    first = int(geth_dev.rpc("eth_blockNumber"), 16)

    def advanced() -> int | None:
        n = int(geth_dev.rpc("eth_blockNumber"), 16)
        return n if n >= first + 2 else None

    # Blocks come without any transaction: the period, not a pending tx, drives them.
    _wait_for(advanced)
    latest = geth_dev.rpc("eth_getBlockByNumber", "latest", False)
    parent = geth_dev.rpc("eth_getBlockByHash", latest["parentHash"], False)
    assert int(latest["timestamp"], 16) > int(parent["timestamp"], 16)


def test_geth_dev_genesis_runs_cancun(geth_dev: engines.GethDevNode) -> None:
    block = geth_dev.rpc("eth_getBlockByNumber", "latest", False)
    for field in ("blobGasUsed", "excessBlobGas", "parentBeaconBlockRoot"):  # cancun's header
        assert field in block, field
    # TSTORE/TLOAD (EIP-1153, cancun) in a contract-creation call: store 42, load, return it.
    code = "0x602a60005d60005c60005260206000f3"
    out = geth_dev.rpc("eth_call", {"data": code}, "latest")
    assert int(out, 16) == 42
    # MCOPY (EIP-5656, cancun) too: copy word 0 to word 1 and return word 1.
    code = "0x602a6000526020600060205e60206020f3"
    assert int(geth_dev.rpc("eth_call", {"data": code}, "latest"), 16) == 42


def test_geth_dev_key_is_funded_and_its_transactions_mine(geth_dev: engines.GethDevNode) -> None:
    from eth_account import Account

    acct = Account.from_key(engines.GETH_DEV_KEY)
    assert acct.address == engines.GETH_DEV_ADDRESS
    assert int(geth_dev.rpc("eth_getBalance", acct.address, "latest"), 16) > 10**18
    nonce = int(geth_dev.rpc("eth_getTransactionCount", acct.address, "pending"), 16)
    base_fee = int(geth_dev.rpc("eth_getBlockByNumber", "latest", False)["baseFeePerGas"], 16)
    tx = {
        "chainId": engines.GETH_DEV_CHAIN_ID,
        "nonce": nonce,
        "to": "0x000000000000000000000000000000000000dEaD",
        "value": 1,
        "gas": 21000,
        "maxFeePerGas": 2 * base_fee + 10**9,
        "maxPriorityFeePerGas": 10**9,
        "type": 2,
    }
    signed = acct.sign_transaction(tx)
    tx_hash = geth_dev.rpc("eth_sendRawTransaction", "0x" + signed.raw_transaction.hex())
    receipt = _wait_for(lambda: geth_dev.rpc("eth_getTransactionReceipt", tx_hash))
    assert receipt["status"] == "0x1"


def test_the_committed_contracts_deploy_on_geth_dev(geth_dev: engines.GethDevNode) -> None:
    """The cancun-compiled artifacts deploy and verify on geth as on anvil (all three
    are under geth's 24 KiB code-size limit; anvil runs with a larger one)."""
    from eth_account import Account

    from govshare.chain.connection import Connection
    from govshare.chain.contracts import DepartmentInit
    from govshare.chain.deploy import deploy, verify_deployment

    broker, admin = Account.create(), Account.create()
    founder = DepartmentInit(
        code="TAX",
        name="Tax office",
        broker=broker.address,
        admins=(admin.address,),
        encryption_key=b"\x01" * 32,
        endpoint="http://127.0.0.1:1",
    )
    deployment = deploy(geth_dev.url, Account.from_key(engines.GETH_DEV_KEY), [founder], 1)
    with Connection(geth_dev.url) as conn:
        verify_deployment(conn, deployment)
    assert deployment.chain_id == engines.GETH_DEV_CHAIN_ID


def test_engines_poll_fails_early_when_the_process_dies(tmp_path: Path) -> None:
    import subprocess
    import sys

    proc = subprocess.Popen([sys.executable, "-c", "raise SystemExit(3)"])
    proc.wait()
    with pytest.raises(engines.EngineFailed, match="exited with code 3"):
        engines.poll(lambda: None, timeout=30, what="nothing", proc=proc)
    with pytest.raises(engines.EngineFailed, match="not ready"):
        engines.poll(lambda: None, timeout=0.05, what="nothing")
