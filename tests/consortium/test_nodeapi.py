"""`govshare consortium reload-allowlists` and `vote-validator` against small stand-ins
for Besu validators: real HTTP JSON-RPC servers on 127.0.0.1 that keep QBFT's vote
rule (a validator joins or leaves once more than half of the current validators
propose it; Besu docs, "Add and remove validators using block headers")."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import click
import pytest
from click.testing import CliRunner

from govshare.cli.main import GovShareGroup
from govshare.cli.net import register
from govshare.consortium import nodeapi

A = [f"0x{i:040x}" for i in range(1, 6)]
NEW = "0x" + "ab" * 20


@dataclass
class Network:
    validators: list[str]
    proposals: dict[str, dict[str, bool]] = field(default_factory=dict)  # voter -> {addr: add}
    calls: list[tuple[str, str, list[Any]]] = field(default_factory=list)
    broken: set[str] = field(default_factory=set)  # nodes without the PERM API
    stalled: bool = False  # no block is produced: votes never land

    def tally(self) -> None:
        if self.stalled:
            return
        for addr in {a for p in self.proposals.values() for a in p}:
            for add in (True, False):
                votes = sum(1 for p in self.proposals.values() if p.get(addr) is add)
                if votes * 2 > len(self.validators) and (addr in self.validators) != add:
                    if add:
                        self.validators.append(addr)
                    else:
                        self.validators.remove(addr)


def serve_node(net: Network, name: str) -> tuple[ThreadingHTTPServer, str]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            return None

        def do_POST(self) -> None:
            req = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            method, params = req["method"], req["params"]
            net.calls.append((name, method, params))
            result: Any = None
            error = None
            if method == "perm_reloadPermissionsFromFile":
                if name in net.broken:
                    error = {"code": -32601, "message": "Method not enabled"}
                else:
                    result = "Success"
            elif method == "qbft_proposeValidatorVote":
                net.proposals.setdefault(name, {})[params[0]] = params[1]
                net.tally()
                result = True
            elif method == "qbft_discardValidatorVote":
                net.proposals.get(name, {}).pop(params[0], None)
                result = True
            elif method == "qbft_getValidatorsByBlockNumber":
                result = list(net.validators)
            body = json.dumps({"jsonrpc": "2.0", "id": req["id"], "result": result}
                              if error is None else {"jsonrpc": "2.0", "id": req["id"],
                              "error": error}).encode()  # fmt: skip
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}"


@pytest.fixture
def network() -> Iterator[tuple[Network, list[str]]]:
    net = Network(validators=list(A[:4]))
    servers = [serve_node(net, f"v{i}") for i in range(4)]
    yield net, [url for _, url in servers]
    for server, _ in servers:
        server.shutdown()
        server.server_close()


@pytest.fixture
def run():
    @click.group(cls=GovShareGroup)
    def consortium() -> None:
        """throwaway group"""

    register(consortium)
    runner = CliRunner()
    return lambda *args: runner.invoke(consortium, list(args))


def rpcs(urls: list[str]) -> list[str]:
    return [x for u in urls for x in ("--rpc", u)]


def test_vote_in_waits_for_the_set_then_discards(network, run) -> None:
    net, urls = network
    res = run("vote-validator", NEW, *rpcs(urls[:3]), "--wait", "5", "--json")
    assert res.exit_code == 0, res.output
    data = json.loads(res.output)
    assert data["done"] and NEW in data["validators"] and NEW not in data["validators_before"]
    assert [c[1] for c in net.calls if c[1] != "qbft_getValidatorsByBlockNumber"] == [
        "qbft_proposeValidatorVote"
    ] * 3 + ["qbft_discardValidatorVote"] * 3
    assert all(p == {} for p in net.proposals.values())  # every vote discarded


def test_vote_out_and_already_done(network, run) -> None:
    net, urls = network
    res = run("vote-validator", A[3], "--remove", *rpcs(urls[:3]), "--wait", "5")
    assert res.exit_code == 0, res.output
    assert A[3] not in net.validators and "left the validator set" in res.output
    calls = len(net.calls)
    again = run("vote-validator", A[3], "--remove", *rpcs(urls[:3]))
    assert again.exit_code == 0 and len(net.calls) == calls + 1  # one read, no vote


def test_too_few_voters_are_refused_before_voting(network, run) -> None:
    net, urls = network
    res = run("vote-validator", NEW, *rpcs(urls[:2]))
    assert res.exit_code == 1 and "more than half" in res.output
    assert not net.proposals


def test_a_vote_that_does_not_pass_is_reported_and_kept(network, run) -> None:
    net, urls = network
    net.stalled = True
    res = run("vote-validator", NEW, *rpcs(urls), "--wait", "0.2")
    assert res.exit_code == 1 and "did not take effect" in res.output
    assert NEW not in net.validators and len(net.proposals) == 4  # pending, not discarded


def test_reload_allowlists_reports_each_node(network, run) -> None:
    net, urls = network
    res = run("reload-allowlists", *rpcs(urls), "--json")
    assert res.exit_code == 0, res.output
    assert [n["ok"] for n in json.loads(res.output)["nodes"]] == [True] * 4
    net.broken.add("v2")
    bad = run("reload-allowlists", *rpcs(urls))
    assert bad.exit_code == 1 and "1 of 4 validator(s) did not reload" in bad.output
    assert "PERM API enabled" in bad.output


def test_unreachable_node_is_a_clear_error() -> None:
    from govshare.chain.devnode import free_port
    from govshare.errors import ChainUnavailable

    with pytest.raises(ChainUnavailable, match="did not answer"):
        nodeapi.call(f"http://127.0.0.1:{free_port()}", "qbft_getValidatorsByBlockNumber", [])
