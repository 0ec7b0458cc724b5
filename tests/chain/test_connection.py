"""The connection: cached chain id, Besu's long extraData, timeouts, and
transport failures as ChainUnavailable."""

from __future__ import annotations

import socket
import threading
from typing import Any

import pytest
import rlp
from web3 import HTTPProvider, Web3
from web3.exceptions import ExtraDataLengthError
from web3.providers import BaseProvider

from govshare.chain.connection import Connection, RpcError, connect
from govshare.chain.devnode import free_port
from govshare.errors import ChainRejected, ChainUnavailable

# A QBFT block header's extraData: RLP([32-byte vanity, [validators], vote, round, [seals]]).
QBFT_EXTRA = (
    "0x"
    + rlp.encode(
        [b"\0" * 32, [bytes([i]) * 20 for i in range(1, 5)], [], b"", [b"\x07" * 65]]
    ).hex()
)
assert len(bytes.fromhex(QBFT_EXTRA[2:])) > 32


class StubBesu(BaseProvider):
    """Answers like a Besu QBFT node would, for the few methods used here."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[str] = []

    def make_request(self, method: Any, params: Any) -> Any:
        self.calls.append(method)
        block = {
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
        results = {"eth_chainId": "0x539", "eth_getBlockByNumber": block, "eth_gasPrice": "0x0"}
        if method == "eth_getBlockByNumber" and params[0] == "0x0":
            return {"jsonrpc": "2.0", "id": 1, "result": {**block, "number": "0x0"}}
        return {"jsonrpc": "2.0", "id": 1, "result": results[method]}


def test_long_extradata_block_is_handled() -> None:
    # Without the POA middleware web3 refuses the block (the test is meaningful)...
    plain = Web3(StubBesu())
    with pytest.raises(ExtraDataLengthError):
        plain.eth.get_block("latest")
    # ...through the govshare connection it reads, with the QBFT data kept.
    conn = Connection("stub://besu", provider=StubBesu())
    block = conn.get_block("latest")
    assert block["number"] == 16
    assert bytes(block["proofOfAuthorityData"]) == bytes.fromhex(QBFT_EXTRA[2:])


def test_free_gas_is_detected_on_besu_like_node() -> None:
    from govshare.chain.tx import FreeGas, gas_policy

    assert isinstance(gas_policy(Connection("stub://besu", provider=StubBesu())), FreeGas)


class CountingProvider(HTTPProvider):
    def __init__(self, url: str) -> None:
        super().__init__(url)
        self.methods: list[str] = []

    def make_request(self, method: Any, params: Any) -> Any:
        self.methods.append(method)
        return super().make_request(method, params)


def test_chain_id_is_read_once(anvil_url: str) -> None:
    provider = CountingProvider(anvil_url)
    conn = Connection(anvil_url, provider=provider)
    assert conn.chain_id == 31337
    for _ in range(5):
        conn.call("0x" + "00" * 20, b"")
        conn.w3.eth.call({"to": "0x" + "00" * 20, "data": "0x"})
    assert provider.methods.count("eth_chainId") == 1


def test_unreachable_node() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    with pytest.raises(ChainUnavailable) as err:
        connect(url, timeout=1)
    assert url in err.value.message
    assert "govshare dev chain start" in err.value.message
    assert err.value.code == "chain.unavailable"
    assert not isinstance(err.value.__cause__, ChainUnavailable)


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


def test_wrong_chain_id(anvil_url: str) -> None:
    with pytest.raises(ChainRejected, match="on chain 31337"):
        Connection(anvil_url, expected_chain_id=1)


def test_node_errors_are_govshare_errors(conn: Connection) -> None:
    with pytest.raises(RpcError) as err:
        conn.request("eth_noSuchMethod", [])
    assert isinstance(err.value, ChainRejected)
    answers = conn.batch([("eth_blockNumber", []), ("eth_noSuchMethod", [])])
    assert isinstance(answers[0], str) and isinstance(answers[1], RpcError)
