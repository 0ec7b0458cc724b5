"""The connection: JSON-RPC over httpx with a cached chain id, plain JSON blocks
(Besu's long extraData), batches matched by id, and every way a node can fail
turned into a govshare error: down, silent, HTTP 500, not JSON, a batch item
refused, a keep-alive connection dropped (reads retried once, transactions
never)."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
import rlp

from govshare.chain.connection import Connection, RpcError, connect, node_epoch
from govshare.chain.devnode import free_port
from govshare.errors import ChainError, ChainRejected, ChainUnavailable

# A QBFT block header's extraData: RLP([32-byte vanity, [validators], vote, round, [seals]]).
QBFT_EXTRA = (
    "0x"
    + rlp.encode(
        [b"\0" * 32, [bytes([i]) * 20 for i in range(1, 5)], [], b"", [b"\x07" * 65]]
    ).hex()
)
assert len(bytes.fromhex(QBFT_EXTRA[2:])) > 32

BESU_BLOCK = {
    "number": "0x10",
    "hash": "0x" + "11" * 32,
    "parentHash": "0x" + "22" * 32,
    "extraData": QBFT_EXTRA,
    "gasLimit": "0x1fffffffffffff",
    "gasUsed": "0x0",
    "timestamp": "0x65000000",
    "baseFeePerGas": "0x0",
    "miner": "0x" + "ab" * 20,
    "transactions": [],
}

Answer = Callable[[str, list[Any]], Any]


def besu(method: str, params: list[Any]) -> Any:
    """Results as a Besu QBFT node gives them, for the few methods used here."""
    if method == "eth_getBlockByNumber":
        return {**BESU_BLOCK, "number": "0x0"} if params[0] == "0x0" else BESU_BLOCK
    if method == "eth_getBlockByHash":
        return BESU_BLOCK if params[0] == BESU_BLOCK["hash"] else None
    return {"eth_chainId": "0x539", "eth_gasPrice": "0x0", "eth_blockNumber": "0x10"}[method]


def rpc_reply(body: Any, answer: Answer) -> Any:
    def one(req: dict[str, Any]) -> dict[str, Any]:
        return {"jsonrpc": "2.0", "id": req["id"], "result": answer(req["method"], req["params"])}

    return [one(r) for r in body] if isinstance(body, list) else one(body)


def stub(answer: Answer = besu, *, seen: list[str] | None = None) -> httpx.MockTransport:
    """A node in-process: every request answered by ``answer(method, params)``."""

    def handle(request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        if seen is not None:
            seen.extend(r["method"] for r in (body if isinstance(body, list) else [body]))
        return httpx.Response(200, json=rpc_reply(body, answer))

    return httpx.MockTransport(handle)


def stub_connection(after_connect: Callable[[httpx.Request], httpx.Response]) -> Connection:
    """A connection whose node answers normally until connected, then with
    ``after_connect`` (a raw HTTP response: errors, garbage)."""
    connected = threading.Event()

    def handle(request: httpx.Request) -> httpx.Response:
        if connected.is_set():
            return after_connect(request)
        return httpx.Response(200, json=rpc_reply(json.loads(request.content), besu))

    conn = Connection("http://node.test", transport=httpx.MockTransport(handle))
    connected.set()
    return conn


# -- blocks, chain id -----------------------------------------------------------------


def test_long_extradata_block_is_plain_json() -> None:
    with Connection("http://besu.test", transport=stub()) as conn:
        block = conn.get_block("latest")
        assert block == BESU_BLOCK  # as the node sent it: hex strings, extraData whole
        assert conn.get_block(16)["extraData"] == QBFT_EXTRA
        assert conn.get_block(BESU_BLOCK["hash"])["number"] == "0x10"
        assert conn.get_block(bytes.fromhex("11" * 32))["number"] == "0x10"
        with pytest.raises(ChainRejected, match="does not exist"):
            conn.get_block("0x" + "99" * 32)


def test_free_gas_is_detected_on_besu_like_node() -> None:
    from govshare.chain.tx import FreeGas, gas_policy

    with Connection("http://besu.test", transport=stub()) as conn:
        assert isinstance(gas_policy(conn), FreeGas)


class CountingTransport(httpx.HTTPTransport):
    """The real network, recording the JSON-RPC methods sent."""

    def __init__(self) -> None:
        super().__init__()
        self.methods: list[str] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        self.methods.extend(r["method"] for r in (body if isinstance(body, list) else [body]))
        return super().handle_request(request)


@pytest.fixture(params=["anvil", "geth"])
def node_url(request: pytest.FixtureRequest) -> str:
    """Each real client the chain layer runs against (geth skips where it cannot run)."""
    if request.param == "anvil":
        return str(request.getfixturevalue("anvil_url"))
    return str(request.getfixturevalue("geth_dev").url)


def test_chain_id_is_read_once_and_blocks_are_hex(node_url: str) -> None:
    transport = CountingTransport()
    with Connection(node_url, transport=transport) as conn:
        for _ in range(5):
            conn.call("0x" + "00" * 20, b"")
        assert transport.methods.count("eth_chainId") == 1
        latest = conn.get_block("latest")
        assert latest["number"].startswith("0x") and latest["hash"].startswith("0x")
        assert conn.get_block(int(latest["number"], 16))["hash"] == latest["hash"]
        assert conn.get_block(latest["hash"])["number"] == latest["number"]
        assert conn.get_block(0)["hash"] == conn.genesis_hash
        with pytest.raises(ChainRejected, match="does not exist"):
            conn.get_block(10**9)


def test_node_errors_are_govshare_errors(node_url: str) -> None:
    """A refused request raises RpcError; in a batch, the refused item is an
    RpcError among the others' results, each in its place."""
    with connect(node_url) as conn:
        with pytest.raises(RpcError) as err:
            conn.request("eth_noSuchMethod", [])
        assert isinstance(err.value, ChainRejected) and err.value.rpc_code == -32601
        answers = conn.batch(
            [("eth_blockNumber", []), ("eth_noSuchMethod", []), ("eth_chainId", [])]
        )
        assert isinstance(answers[0], str) and isinstance(answers[1], RpcError)
        assert int(answers[2], 16) == conn.chain_id
        assert conn.batch([]) == []


def test_wrong_chain_id(anvil_url: str) -> None:
    with pytest.raises(ChainRejected, match="on chain 31337"):
        Connection(anvil_url, expected_chain_id=1)


# -- a node that is down, silent, or answers nonsense ---------------------------------


def test_unreachable_node() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    before = node_epoch(url)
    with pytest.raises(ChainUnavailable) as err:
        connect(url, timeout=1)
    assert url in err.value.message
    assert "govshare dev chain start" in err.value.message
    assert err.value.code == "chain.unavailable"
    assert not isinstance(err.value.__cause__, ChainUnavailable)
    assert node_epoch(url) == before + 1  # nonce allocators of that URL resync


def test_silent_node_times_out() -> None:
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(5)
    port = srv.getsockname()[1]
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        srv.settimeout(0.1)
        while not stop.is_set():
            try:
                held.append(srv.accept()[0])  # accept, never answer
            except OSError:
                continue

    t = threading.Thread(target=accept, daemon=True)
    t.start()
    try:
        with pytest.raises(ChainUnavailable) as err:
            connect(f"http://127.0.0.1:{port}", timeout=0.3)
        assert "did not answer within 0.3s" in err.value.message
    finally:
        stop.set()
        t.join()
        for s in held:
            s.close()
        srv.close()


def test_http_500_is_unavailable() -> None:
    conn = stub_connection(lambda _: httpx.Response(500, text="Internal Server Error"))
    before = node_epoch(conn.url)
    with pytest.raises(ChainUnavailable, match="answered HTTP 500") as err:
        conn.block_number()
    assert err.value.details["http_status"] == 500
    assert node_epoch(conn.url) == before + 1
    with pytest.raises(ChainUnavailable, match="answered HTTP 500"):
        conn.batch([("eth_blockNumber", []), ("eth_chainId", [])])
    conn.close()


def test_error_object_with_an_http_error_status_is_the_nodes_answer() -> None:
    """Some nodes send a JSON-RPC error with HTTP 400: it is a refusal, not an outage."""

    def refuse(request: httpx.Request) -> httpx.Response:
        req = json.loads(request.content)
        error = {"code": -32602, "message": "Invalid params"}
        return httpx.Response(400, json={"jsonrpc": "2.0", "id": req["id"], "error": error})

    with stub_connection(refuse) as conn, pytest.raises(RpcError, match="Invalid params"):
        conn.get_balance("0xnot-an-address")


@pytest.mark.parametrize(
    "content",
    [b"<html>502 Bad Gateway</html>", b'{"jsonrpc": "2.0", "id": 1, "res', b"\xff\xfe", b"[]"],
)
def test_malformed_answer_is_unavailable(content: bytes) -> None:
    answer = httpx.Response(200, content=content)
    with (
        stub_connection(lambda _: answer) as conn,
        pytest.raises(ChainUnavailable, match="JSON-RPC"),
    ):
        conn.block_number()


def test_batch_answers_are_matched_by_id() -> None:
    """A node may answer a batch in any order; a batch answer with an item
    missing is not guessed at (it could be a transaction sent or not)."""
    order = {"reverse": True, "drop": False}

    def handle(request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        out = rpc_reply(body, lambda m, p: m if m != "eth_chainId" else "0x539")
        if isinstance(out, list):
            if order["reverse"]:
                out.reverse()
            if order["drop"]:
                out.pop()
        return httpx.Response(200, json=out)

    with Connection("http://node.test", transport=httpx.MockTransport(handle)) as conn:
        methods = ["eth_blockNumber", "eth_gasPrice", "eth_getLogs"]
        assert conn.batch([(m, []) for m in methods]) == methods
        order["drop"] = True
        with pytest.raises(ChainUnavailable, match="not JSON-RPC"):
            conn.batch([(m, []) for m in methods])


@pytest.mark.parametrize("status", [200, 413])
def test_batch_refused_as_a_whole(status: int) -> None:
    """One error instead of the batch's answers (geth: "batch too large")."""

    def refuse(request: httpx.Request) -> httpx.Response:
        error = {"code": -32600, "message": "batch too large"}
        first = json.loads(request.content)[0]["id"]
        return httpx.Response(status, json=[{"jsonrpc": "2.0", "id": first, "error": error}])

    with stub_connection(refuse) as conn, pytest.raises(RpcError, match="batch too large"):
        conn.batch([("eth_blockNumber", []), ("eth_chainId", [])])


def test_a_closed_connection_says_so(anvil_url: str) -> None:
    with connect(anvil_url) as conn:
        assert conn.block_number() >= 0
    with pytest.raises(ChainError, match="was closed"):
        conn.block_number()


# -- a keep-alive connection dropped by the node --------------------------------------


class DroppingNode:
    """A JSON-RPC node on a real socket. Each TCP connection answers its first
    request (keep-alive) and hangs up on the second after reading it: what a
    node or proxy closing an idle keep-alive connection looks like to a client
    that sends on it at that moment."""

    def __init__(self) -> None:
        self.server = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.server.getsockname()[1]}"
        self.received: list[str] = []  # the methods of every request that arrived
        self.dropped: list[str] = []  # ... and of those hung up on
        self._threads: list[threading.Thread] = []
        self._stop = threading.Event()
        self._accepting = threading.Thread(target=self._accept, daemon=True)
        self._accepting.start()

    def _accept(self) -> None:
        self.server.settimeout(0.05)  # (closing a socket does not wake an accept())
        while not self._stop.is_set():
            try:
                sock, _ = self.server.accept()
            except OSError:
                continue
            sock.settimeout(None)
            t = threading.Thread(target=self._serve, args=(sock,), daemon=True)
            self._threads.append(t)
            t.start()

    @staticmethod
    def _read_request(stream: Any) -> bytes | None:
        length = None
        while True:
            line = stream.readline()
            if not line:
                return None
            if line in (b"\r\n", b"\n"):
                break
            name, _, value = line.decode().partition(":")
            if name.strip().lower() == "content-length":
                length = int(value)
        return stream.read(length or 0)

    def _serve(self, sock: socket.socket) -> None:
        with sock, sock.makefile("rb") as stream:
            for served in range(2):
                content = self._read_request(stream)
                if content is None:
                    return
                body = json.loads(content)
                methods = [r["method"] for r in (body if isinstance(body, list) else [body])]
                self.received.extend(methods)
                if served == 1:
                    self.dropped.extend(methods)
                    return  # hang up without a word
                answer = json.dumps(rpc_reply(body, self._result)).encode()
                head = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                head += f"Content-Length: {len(answer)}\r\n\r\n"
                sock.sendall(head.encode() + answer)

    @staticmethod
    def _result(method: str, params: list[Any]) -> Any:
        if method == "eth_sendRawTransaction":
            return "0x" + "ab" * 32
        return besu(method, params)

    def close(self) -> None:
        self._stop.set()
        self._accepting.join()
        self.server.close()
        for t in self._threads:
            t.join()


@pytest.fixture
def dropping_node() -> Iterator[DroppingNode]:
    node = DroppingNode()
    yield node
    node.close()


def test_dropped_keep_alive_connection_retries_reads_once(dropping_node: DroppingNode) -> None:
    with Connection(dropping_node.url) as conn:  # eth_chainId, then the genesis block
        assert conn.genesis_hash == BESU_BLOCK["hash"]
        assert conn.block_number() == 16
        assert conn.batch([("eth_blockNumber", []), ("eth_gasPrice", [])]) == ["0x10", "0x0"]
    # every read that met a dropped connection was sent once more, and only once
    assert dropping_node.dropped == [
        "eth_getBlockByNumber",
        "eth_blockNumber",
        "eth_blockNumber",
        "eth_gasPrice",
    ]
    assert dropping_node.received == [
        "eth_chainId",
        *["eth_getBlockByNumber"] * 2,
        *["eth_blockNumber"] * 2,
        *["eth_blockNumber", "eth_gasPrice"] * 2,
    ]


def test_dropped_keep_alive_connection_never_resends_a_transaction(
    dropping_node: DroppingNode,
) -> None:
    with Connection(dropping_node.url) as conn:
        before = node_epoch(conn.url)
        with pytest.raises(ChainUnavailable, match="not reachable"):
            conn.send_raw_transaction(b"\x02raw")
        assert node_epoch(conn.url) == before + 1
        # a batch holding a transaction is not re-sent either
        assert conn.send_raw_transaction(b"\x02raw") == "0x" + "ab" * 32  # a fresh connection
        with pytest.raises(ChainUnavailable):
            conn.batch([("eth_sendRawTransaction", ["0x02"]), ("eth_blockNumber", [])])
    assert dropping_node.received.count("eth_sendRawTransaction") == 3
    assert dropping_node.dropped.count("eth_sendRawTransaction") == 2


# -- one HTTP stack -------------------------------------------------------------------


def test_govshare_does_not_import_web3() -> None:
    """The chain layer, the broker and the CLI talk JSON-RPC through httpx only."""
    code = (
        "import sys, govshare.chain, govshare.chain.mirror, govshare.broker.services, "
        "govshare.api.app, govshare.cli.main, govshare.cli.serve, govshare.audit.view\n"
        "print(sorted(m for m in ('web3', 'requests', 'websockets', 'aiohttp') "
        "if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
