"""Sending: signed transactions carry their fields and sender, the nonce allocator under threads and
asyncio, resync after injected failures, gas policies."""

from __future__ import annotations

import asyncio
import gc
import threading
import time
import weakref
from concurrent.futures import ThreadPoolExecutor

import coincurve
import pytest
import rlp
from eth_account import Account
from eth_keys import KeyAPI
from eth_utils import keccak, to_checksum_address

from govshare.chain import tx as txmod
from govshare.chain.connection import Connection, RpcError
from govshare.chain.tx import (
    GAS_SLACK,
    Eip1559Gas,
    FreeGas,
    Sender,
    TxRequest,
    account_state,
    gas_policy,
    signed_transaction,
)
from govshare.errors import ChainRejected, ChainUnavailable, TransactionTimeout


def _transfer(to: str, value: int = 0) -> TxRequest:
    return TxRequest(to=to, data=b"", value=value, gas=21_000, label="transfer")


def _assert_gapless(conn: Connection, address: str, results: list, expected: int) -> None:
    nonces = sorted(r.nonce for r in results)
    assert nonces == list(range(expected)), "duplicate or missing nonce"
    assert conn.get_transaction_count(address, "latest") == expected
    assert conn.get_transaction_count(address, "pending") == expected


def test_eth_account_signs_with_coincurve(monkeypatch) -> None:
    """eth-account's key backend is coincurve's native secp256k1 (installed)."""
    assert type(KeyAPI().backend).__name__ == "CoinCurveECCBackend"
    calls: list[bytes] = []
    real = coincurve.PrivateKey.sign_recoverable

    def spy(self: coincurve.PrivateKey, message: bytes, hasher: object = None) -> bytes:
        calls.append(message)
        return real(self, message, hasher=hasher)

    monkeypatch.setattr(coincurve.PrivateKey, "sign_recoverable", spy)
    tx = {"chainId": 1, "nonce": 0, "gas": 21_000, "value": 0, "data": b"", "gasPrice": 1}
    signed_transaction(Account.create(), {**tx, "to": None})
    assert len(calls) == 1


def _int(value: bytes) -> int:
    return int.from_bytes(value, "big")


def _decode(raw: bytes) -> dict:
    """A raw transaction as a node parses it (RLP, EIP-2718 envelope), without
    eth-account: what was signed is what goes on the wire."""
    if raw[0] == 2:
        chain_id, nonce, tip, max_fee, gas, to, value, data, access, y, _, _ = rlp.decode(raw[1:])
        assert access == [] and _int(y) in (0, 1)
        fields = {"type": 2, "maxPriorityFeePerGas": _int(tip), "maxFeePerGas": _int(max_fee)}
        chain = _int(chain_id)
    else:
        nonce, price, gas, to, value, data, v, _, _ = rlp.decode(raw)
        chain = (_int(v) - 35) // 2  # EIP-155: v = 35 + 2 * chain id + parity
        assert _int(v) - 35 - 2 * chain in (0, 1)
        fields = {"type": 0, "gasPrice": _int(price)}
    return {
        **fields,
        "chainId": chain,
        "nonce": _int(nonce),
        "gas": _int(gas),
        "to": to_checksum_address(to) if to else None,
        "value": _int(value),
        "data": data,
    }


@pytest.mark.parametrize(
    "fields",
    [
        {"type": 2, "maxFeePerGas": 3 * 10**9, "maxPriorityFeePerGas": 10**9},
        {"type": 0, "gasPrice": 0},
        {"type": 0, "gasPrice": 7 * 10**9},
    ],
)
@pytest.mark.parametrize("to", [None, "0x000000000000000000000000000000000000dEaD"])
def test_signed_transaction_decodes_to_its_fields_and_sender(fields: dict, to: str | None) -> None:
    acct = Account.create()
    for nonce, data in [(0, b""), (7, b"\x01\x02" * 40), (2**20, bytes(range(256)))]:
        tx = {"chainId": 31337, "nonce": nonce, "gas": 123_456, "value": 5, "data": data, **fields}
        raw, tx_hash = signed_transaction(acct, {**tx, "to": to})
        assert _decode(raw) == {**tx, "to": to}
        assert Account.recover_transaction(raw) == acct.address
        assert tx_hash == "0x" + keccak(raw).hex()


def test_any_hex_case_of_the_recipient_signs() -> None:
    """eth-account refuses a mixed-case address that is not a checksum; callers
    may hold lower-case ones (from a node's JSON, a user)."""
    acct = Account.create()
    to = "0x000000000000000000000000000000000000dEaD"
    tx = {"chainId": 1, "nonce": 0, "gas": 21_000, "value": 0, "data": b"", "gasPrice": 1}
    raw, _ = signed_transaction(acct, {**tx, "to": to.lower()})
    assert _decode(raw)["to"] == to


def test_no_key_outlives_its_account(conn: Connection, fresh_account) -> None:
    """Signing keeps no copy of a key: once the unlocked account is gone, no
    secp256k1 private key object is left in the process."""
    acct = fresh_account()
    sender = Sender(conn)
    sender.transact(acct, _transfer(acct.address))
    sender.sign(acct, _transfer(acct.address))
    gone = weakref.ref(acct)
    del acct
    gc.collect()
    assert gone() is None
    assert not [o for o in gc.get_objects() if isinstance(o, coincurve.PrivateKey)]


@pytest.mark.slow  # 500 transactions mined one by one
def test_500_concurrent_threads_one_key(conn: Connection, fresh_account) -> None:
    acct = fresh_account()
    sender = Sender(conn)
    sink = Account.create().address
    with ThreadPoolExecutor(max_workers=64) as pool:
        results = list(pool.map(lambda i: sender.transact(acct, _transfer(sink, i)), range(500)))
    assert len({r.tx_hash for r in results}) == 500
    _assert_gapless(conn, acct.address, results, 500)
    assert conn.get_balance(sink) == sum(range(500))


@pytest.mark.slow  # 500 transactions mined one by one
def test_500_concurrent_asyncio_one_key(conn: Connection, fresh_account) -> None:
    acct = fresh_account()
    sender = Sender(conn)
    sink = Account.create().address

    async def main() -> list:
        return await asyncio.gather(
            *(sender.transact_async(acct, _transfer(sink, 1)) for _ in range(500))
        )

    results = asyncio.run(main())
    _assert_gapless(conn, acct.address, results, 500)
    assert conn.get_balance(sink) == 500


def test_submit_many_is_one_gapless_sequence(conn: Connection, fresh_account) -> None:
    acct = fresh_account()
    sender = Sender(conn)
    reqs = [_transfer(acct.address) for _ in range(300)]
    results = sender.wait_many(sender.submit_many(acct, reqs))
    _assert_gapless(conn, acct.address, results, 300)


def test_resync_after_key_used_elsewhere(conn: Connection, fresh_account) -> None:
    """Another process sends with the same key: our next send hits "nonce too
    low", resyncs from the node and still succeeds, without a gap."""
    acct = fresh_account()
    sender = Sender(conn)
    sender.transact(acct, _transfer(acct.address))
    for n in (1, 2, 3):  # behind the sender's back (value 1: not the same bytes as ours)
        raw, _ = signed_transaction(
            acct,
            {
                "chainId": conn.chain_id,
                "nonce": n,
                "gas": 21_000,
                "to": acct.address,
                "value": 1,
                "data": b"",
                **sender.gas.fees(),
            },
        )
        conn.send_raw_transaction(raw)
    result = sender.transact(acct, _transfer(acct.address))
    assert result.nonce == 4
    assert conn.get_transaction_count(acct.address, "pending") == 5


def _behind_the_back(conn: Connection, sender: Sender, acct, nonce: int) -> str:
    """Another process sends with ``acct``'s key (value 1: not our bytes)."""
    raw, tx_hash = signed_transaction(
        acct,
        {
            "chainId": conn.chain_id,
            "nonce": nonce,
            "gas": 21_000,
            "to": acct.address,
            "value": 1,
            "data": b"",
            **sender.gas.fees(),
        },
    )
    conn.send_raw_transaction(raw)
    return tx_hash


def test_signed_bytes_take_the_nodes_nonce_after_the_key_was_used_elsewhere(
    conn: Connection, fresh_account
) -> None:
    """Bytes kept to be sent again as they are (an administrator's journaled
    decision) are signed on the node's pending count, not on the nonce this
    process last used: another process (the CLI, a broker resending a decision)
    may have used the key since, well within the idle resync."""
    acct = fresh_account()
    sender = Sender(conn)
    sender.transact(acct, _transfer(acct.address))  # this process: next nonce 1
    _behind_the_back(conn, sender, acct, 1)
    signed = sender.sign(acct, _transfer(acct.address))
    assert signed.nonce == 2
    assert sender.send_signed(signed).wait().nonce == 2


def test_signed_bytes_take_the_nodes_nonce_after_the_chain_lost_blocks(
    conn: Connection, fresh_account
) -> None:
    """A chain restored to an older state (a dev chain's dump) lost this
    account's last transaction: the next signed bytes reuse its nonce, not the
    one after it (which could never be mined)."""
    acct = fresh_account()
    sender = Sender(conn)
    sender.transact(acct, _transfer(acct.address))
    snap = conn.request("evm_snapshot", [])
    sender.transact(acct, _transfer(acct.address))  # next nonce 2 here...
    assert conn.request("evm_revert", [snap]) is True  # ...1 on chain
    signed = sender.sign(acct, _transfer(acct.address))
    assert signed.nonce == 1
    assert sender.send_signed(signed).wait(timeout=10).nonce == 1


def test_send_signed_after_its_nonce_was_taken_refuses_and_resyncs(
    conn: Connection, fresh_account
) -> None:
    """ "nonce too low" for signed bytes: if the node has them (mined already) they
    are on their way; if another transaction took the slot they cannot land —
    refused, saying so, and the account's nonce is re-read before the next send."""
    acct = fresh_account()
    sender = Sender(conn)
    mined = sender.sign(acct, _transfer(acct.address))
    sender.send_signed(mined).wait()
    again = sender.send_signed(mined)  # mined: "nonce too low", and the node knows it
    assert again.tx_hash == mined.tx_hash and again.wait().nonce == 0

    late = sender.sign(acct, _transfer(acct.address))
    _behind_the_back(conn, sender, acct, late.nonce)
    # "nonce too low" once the other one is mined, "replacement ..." while it is pooled
    with pytest.raises(ChainRejected, match=r"nonce too low|replacement") as caught:
        sender.send_signed(late)
    assert caught.value.details["nonce_used"] is True
    assert account_state(conn.url, acct.address, conn.genesis_hash).next_nonce is None
    assert sender.transact(acct, _transfer(acct.address)).nonce == late.nonce + 1


def test_send_failure_reuses_nonce(conn: Connection, fresh_account, monkeypatch) -> None:
    """The node goes away during a send: the caller gets ChainUnavailable (with
    the hash), and the next transaction takes the same nonce: no gap."""
    acct = fresh_account()
    sender = Sender(conn)
    sender.transact(acct, _transfer(acct.address))
    real = conn.send_raw_transaction

    def down(raw: bytes) -> str:
        raise ChainUnavailable("The chain node is not reachable (injected).")

    monkeypatch.setattr(conn, "send_raw_transaction", down)
    with pytest.raises(ChainUnavailable) as err:
        sender.transact(acct, _transfer(acct.address))
    assert err.value.details["tx_hash"].startswith("0x")
    monkeypatch.setattr(conn, "send_raw_transaction", real)
    result = sender.transact(acct, _transfer(acct.address))
    assert result.nonce == 1
    assert conn.get_transaction_count(acct.address, "latest") == 2


def test_rejected_tx_in_a_burst_leaves_no_gap(conn: Connection, fresh_account) -> None:
    """One transaction of a concurrent burst is refused by the node (it cannot
    pay): it fails alone; the nonce hole is filled and every other one mines."""
    acct = fresh_account()
    sender = Sender(conn)
    sink = Account.create().address
    too_much = 10**24  # more than the account holds

    def one(i: int):
        try:
            return sender.transact(acct, _transfer(sink, too_much if i == 37 else 1))
        except ChainRejected as exc:
            return exc

    with ThreadPoolExecutor(max_workers=32) as pool:
        out = list(pool.map(one, range(120)))
    errors = [o for o in out if isinstance(o, ChainRejected)]
    assert len(errors) == 1 and "cannot pay" in errors[0].message
    ok = [o for o in out if not isinstance(o, Exception)]
    assert len(ok) == 119
    assert conn.get_balance(sink) == 119
    # No gap: everything sent is mined, nothing is stuck behind a hole.
    assert conn.get_transaction_count(acct.address, "latest") == conn.get_transaction_count(
        acct.address, "pending"
    )
    assert len({o.nonce for o in ok}) == 119


def test_injected_nonce_error_in_batch_resyncs(conn: Connection, fresh_account, monkeypatch):
    """A batch where the node answers "nonce too low" for one item (as if another
    process took that nonce): the item is re-sent after a resync."""
    acct = fresh_account()
    sender = Sender(conn)
    real_batch = conn.batch
    calls = {"n": 0}

    def flaky(calls_):
        if calls_ and calls_[0][0] == "eth_sendRawTransaction" and calls["n"] == 0:
            calls["n"] += 1
            # Take nonce 0 with another transaction first, then send ours. (It
            # differs from ours — value 1 — or the node would call ours "known".)
            raw, _ = signed_transaction(
                acct,
                {
                    "chainId": conn.chain_id,
                    "nonce": 0,
                    "gas": 21_000,
                    "to": acct.address,
                    "value": 1,
                    "data": b"",
                    **sender.gas.fees(),
                },
            )
            conn.send_raw_transaction(raw)
        return real_batch(calls_)

    monkeypatch.setattr(conn, "batch", flaky)
    results = sender.transact_many(acct, [_transfer(acct.address) for _ in range(5)])
    assert sorted(r.nonce for r in results) == [1, 2, 3, 4, 5]
    assert conn.get_transaction_count(acct.address, "latest") == 6


def test_a_round_cut_short_by_the_node_leaves_no_gap(
    conn: Connection, fresh_account, monkeypatch
) -> None:
    """A round goes out in chunks, each signed while the one before is on its
    way. The node goes away on the second: the first chunk's transactions are
    sent, the second's in doubt, the rest never left; the next send resyncs
    from the node and takes the first free nonce."""
    monkeypatch.setattr(txmod, "SIGN_CHUNK", 3)
    acct = fresh_account()
    sender = Sender(conn)
    real_batch = conn.batch
    sends: list[int] = []

    def flaky(calls):
        if calls and calls[0][0] == "eth_sendRawTransaction":
            sends.append(len(calls))
            if len(sends) == 2:
                raise ChainUnavailable("The chain node is not reachable (injected).")
        return real_batch(calls)

    monkeypatch.setattr(conn, "batch", flaky)
    with pytest.raises(ChainUnavailable, match="may or may not") as err:
        sender.submit_many(acct, [_transfer(acct.address) for _ in range(8)])
    assert sends == [3, 3]  # nothing after the chunk that failed
    assert len(err.value.details["sent"]) == 3
    monkeypatch.setattr(conn, "batch", real_batch)
    assert sender.transact(acct, _transfer(acct.address)).nonce == 3
    assert conn.get_transaction_count(acct.address, "latest") == 4


def test_a_round_whose_signing_fails_sends_only_what_was_signed(
    conn: Connection, fresh_account, monkeypatch
) -> None:
    monkeypatch.setattr(txmod, "SIGN_CHUNK", 3)
    acct = fresh_account()
    sender = Sender(conn)
    real_sign = txmod.signed_transaction
    signed: list[int] = []

    def failing(account, tx):
        signed.append(tx["nonce"])
        if len(signed) == 5:
            raise ValueError("cannot sign (injected)")
        return real_sign(account, tx)

    monkeypatch.setattr(txmod, "signed_transaction", failing)
    with pytest.raises(ValueError, match="injected"):
        sender.submit_many(acct, [_transfer(acct.address) for _ in range(8)])
    monkeypatch.setattr(txmod, "signed_transaction", real_sign)
    # the first chunk went out; the nonces of the others were given back
    assert sender.transact(acct, _transfer(acct.address)).nonce == 3
    assert conn.get_transaction_count(acct.address, "latest") == 4


def test_receipt_timeout(conn: Connection, fresh_account) -> None:
    acct = fresh_account()
    sender = Sender(conn)
    conn.request("evm_setAutomine", [False])
    try:
        pending = sender.submit(acct, _transfer(acct.address))
        with pytest.raises(TransactionTimeout) as err:
            pending.wait(timeout=0.3)
        assert err.value.details["tx_hash"] == pending.tx_hash
        assert err.value.code == "chain.tx_timeout"
    finally:
        conn.request("evm_setAutomine", [True])
    conn.request("evm_mine", [])
    assert pending.wait(timeout=5).nonce == 0


def test_gas_policies(conn: Connection) -> None:
    assert isinstance(gas_policy(conn), Eip1559Gas)
    fees = gas_policy(conn).fees()
    base = int(conn.request("eth_getBlockByNumber", ["latest", False])["baseFeePerGas"], 16)
    assert fees["type"] == 2 and fees["maxFeePerGas"] >= base + fees["maxPriorityFeePerGas"]
    assert gas_policy(conn, "free").fees() == {"type": 0, "gasPrice": 0}


def test_free_gas_network() -> None:
    """An anvil run like a free-gas Besu network (zero base fee, zero gas
    price): auto-detected, and zero-price transactions mine at no cost."""
    from govshare.chain.devnode import AnvilProcess

    node = AnvilProcess(
        extra_args=["--base-fee", "0", "--gas-price", "0", "--disable-min-priority-fee"]
    ).start()
    try:
        with Connection(node.url) as conn:
            sender = Sender(conn)
            assert isinstance(sender.gas, FreeGas)
            acct = Account.create()  # no balance at all
            result = sender.transact(acct, _transfer(acct.address))
            assert result.gas_used == 21_000
            assert conn.get_balance(acct.address) == 0
    finally:
        node.stop()


def test_allocator_is_per_url_and_account(conn: Connection) -> None:
    g = conn.genesis_hash
    assert g.startswith("0x")
    a = account_state(conn.url, "0x" + "11" * 20, g)
    assert account_state(conn.url + "/", "0x" + "11" * 20, g) is a
    assert account_state(conn.url, "0x" + "22" * 20, g) is not a
    assert account_state(conn.url, "0x" + "11" * 20, "0xother") is not a
    assert isinstance(a.send_lock, type(threading.Lock()))


def test_rpc_error_classification() -> None:
    def err(msg: str, code: int = -32000) -> RpcError:
        return RpcError("eth_sendRawTransaction", {"code": code, "message": msg}, "u")

    assert txmod._classify(err("nonce too low")) == "nonce"
    assert txmod._classify(err("NONCE_TOO_LOW")) == "nonce"
    assert txmod._classify(err("replacement transaction underpriced")) == "nonce"
    assert txmod._classify(err("already known")) == "known"
    assert txmod._classify(err("transaction already imported")) == "known"
    assert txmod._classify(err("KNOWN_TRANSACTION")) == "known"
    assert txmod._classify(err("max fee per gas less than block base fee")) == "fee"
    assert txmod._classify(err("GAS_PRICE_BELOW_CURRENT_BASE_FEE")) == "fee"
    assert txmod._classify(err("intrinsic gas too low")) == "fatal"


def test_refused_middle_of_batch_is_filled(conn: Connection, fresh_account) -> None:
    """submit_many: the node refuses the third of five; the other four are sent
    (their hashes are on the error) and nonce 2 is filled, so all of them mine."""
    acct = fresh_account()
    sender = Sender(conn)
    reqs = [_transfer(acct.address, 10**24 if i == 2 else 0) for i in range(5)]
    with pytest.raises(ChainRejected) as err:
        sender.submit_many(acct, reqs)
    sent = err.value.details["sent"]
    assert len(sent) == 4
    deadline = time.monotonic() + 20
    while not all(conn.get_receipt(h) for h in sent):  # all four mine: no hole before them
        assert time.monotonic() < deadline
        time.sleep(0.01)
    assert conn.get_transaction_count(acct.address, "latest") == 5  # 4 + the filler
    assert sender.transact(acct, _transfer(acct.address)).nonce == 5


def test_estimate_covers_estimate_gas(consortium) -> None:
    """One-execution estimates (eth_createAccessList's gasUsed, with the margin)
    are never below eth_estimateGas's binary search, for real contract calls."""
    import os as _os

    from govshare.chain.contracts import AnchorInput

    L, tax = consortium.ledger, consortium["TAX"]
    L.records.declare_category(tax.admin, "gas", "gas")
    reqs = [
        L.records.anchor_request(AnchorInput(_os.urandom(32), _os.urandom(32), "b" * n, "gas"))
        for n in (1, 46, 100, 128)  # (a CID is at most 128 bytes)
    ]
    fast = L.sender.estimate_many(tax.broker, reqs)
    for req, gas in zip(reqs, fast, strict=True):
        params = {"from": tax.broker.address, "to": req.to, "data": "0x" + req.data.hex()}
        assert gas >= int(conn_estimate(L.conn, params), 16)
    # long strings cost the most storage: a 2,000-byte catalog description
    req = L.records._request("declareCategory", b"gas".ljust(32, b"\0"), "d" * 2000, b"\0" * 32)
    params = {"from": tax.admin.address, "to": req.to, "data": "0x" + req.data.hex()}
    assert L.sender.estimate(tax.admin, req) >= int(conn_estimate(L.conn, params), 16)
    assert L.sender._use_access_list


def conn_estimate(conn: Connection, params: dict) -> str:
    return conn.request("eth_estimateGas", [params])


def test_node_without_access_lists_falls_back(conn: Connection, fresh_account, monkeypatch) -> None:
    acct = fresh_account()
    sender = Sender(conn)
    real = conn.request

    def no_access_list(method, params):
        if method == "eth_createAccessList":
            raise RpcError(method, {"code": -32601, "message": "Method not found"}, conn.url)
        return real(method, params)

    monkeypatch.setattr(conn, "request", no_access_list)
    gas = sender.estimate(acct, TxRequest(to=acct.address, data=b""))
    assert gas == int(21_000 * 1.25) + GAS_SLACK
    assert not sender._use_access_list


@pytest.mark.timeout(120)
def test_a_node_that_stops_answering_ends_the_wait_for_a_receipt() -> None:
    """Sent, then the node goes away: the wait gives up after
    ``unavailable_grace`` with ChainUnavailable, naming the transaction whose
    outcome is unknown. The receipt timeout is a day: a wait that ignored the
    grace would hang, and the test's timeout would fail it."""
    from govshare.chain.devnode import AnvilProcess

    node = AnvilProcess().start()
    try:
        with Connection(node.url) as conn:
            sender = Sender(conn, receipt_timeout=86_400, unavailable_grace=0.2)
            acct = Account.create()
            conn.request("anvil_setBalance", [acct.address, hex(10**20)])
            conn.request("evm_setAutomine", [False])
            pending = sender.submit(acct, _transfer(acct.address))
            node.stop(hard=True)
            with pytest.raises(ChainUnavailable, match="outcome is unknown") as info:
                pending.wait()
            assert info.value.details["tx_hash"] == pending.tx_hash
    finally:
        node.stop()
