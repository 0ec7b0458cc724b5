"""``govshare dev chain``: start, status, stop, and a restart keeps the ledger."""

from __future__ import annotations

from govshare.chain.devnode import free_port, rpc_call

from .conftest import Cli


def test_dev_chain_lifecycle_keeps_ledger(cli: Cli) -> None:
    port = str(free_port())
    st = cli.ok("dev", "chain", "status", "--json").json()
    assert st["running"] is False

    started = cli.ok("dev", "chain", "start", "--port", port, "--json").json()
    try:
        assert started["running"] is True and started["chain_id"] == 31337
        assert started["already_running"] is False
        url = started["url"]
        # Mine a few blocks so there is something to lose.
        for _ in range(3):
            rpc_call(url, "evm_mine")
        again = cli.ok("dev", "chain", "start", "--json").json()
        assert again["already_running"] is True and again["block"] == 3
    finally:
        stopped = cli.ok("dev", "chain", "stop", "--json").json()
    assert stopped["stopped"] is True
    assert cli.ok("dev", "chain", "status", "--json").json()["running"] is False

    restarted = cli.ok("dev", "chain", "start", "--json").json()
    try:
        assert restarted["url"] == url, "the port is remembered"
        assert restarted["block"] == 3, "the ledger survives a stop/start"
    finally:
        cli.ok("dev", "chain", "stop")
    assert "not running" in cli.ok("dev", "chain", "stop").stdout


def test_dev_chain_refuses_busy_port(cli: Cli) -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(1)
        port = s.getsockname()[1]
        r = cli.fails("dev", "chain", "start", "--port", str(port))
    assert "already in use" in r.stderr
