"""Sending transactions: local signing, one nonce allocator per account, gas
policy, receipt waits, and reverts turned into govshare errors.

How sends from one account stay gap-free under concurrency
---------------------------------------------------------
Every account has one :class:`AccountState` per node URL in this process (a
process-wide registry, so two ``Ledger`` objects on the same node share it).
A caller prepares its transaction outside any lock (ABI encoding, gas estimate;
a revert here costs no nonce), puts it on the account's queue, then takes the
account's send lock. Whoever holds the lock sends *everything queued* in one
JSON-RPC batch with consecutive nonces (group commit); callers whose
transaction was sent by another thread find it done and return. So nonces are
assigned, signed and sent in one critical section, in order, and:

* a transaction the node refuses for good gives its nonce back when nothing
  after it was accepted, and is replaced by a 0-value self-transfer ("filler")
  when later ones were, so the account never has a hole;
* "nonce too low" / "replacement underpriced" (another process used the key)
  resync from the node's ``pending`` count and re-send;
* a fee below the base fee refreshes the fee and re-sends the same nonce;
* a transport failure (the node went away) resyncs before the next send, and
  so does any use after an idle spell or after the node was unreachable.

Under asyncio the same machinery runs in worker threads (``*_async``), so the
event loop never blocks on the lock or on the node.

Signing is eth-account's (``LocalAccount.sign_transaction``; its key backend is
coincurve's native secp256k1). The key stays in the ``LocalAccount`` the caller
unlocked: nothing here keeps a copy of it. eth-account takes about as long to
sign a transaction as anvil to mine one, so a round is signed and sent in chunks
of :data:`SIGN_CHUNK` (one JSON-RPC batch each), the next chunk signed while the
node works on the last.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, NoReturn, Protocol, cast

from eth_utils import to_checksum_address

from govshare.chain.connection import Connection, RpcError, node_epoch, node_went_away
from govshare.errors import (
    ChainError,
    ChainRejected,
    ChainUnavailable,
    ContractReverted,
    GovShareError,
    TransactionDropped,
    TransactionTimeout,
)

if TYPE_CHECKING:
    from eth_account.signers.local import LocalAccount

log = logging.getLogger(__name__)

DEFAULT_GAS_MARGIN = 1.25
#: Gas added to every estimate after the margin: the 2,300 an SSTORE needs left
#: (EIP-2200's sentry), which a refund-sized margin does not cover on its own.
GAS_SLACK = 3_000
DEFAULT_RECEIPT_TIMEOUT = 120.0
#: Seconds without any answer from the node after which waiting for a receipt stops.
DEFAULT_UNAVAILABLE_GRACE = 15.0
# After this long without sending, re-read the account's nonce from the node
# (the dev chain may have been reset or restored from an older dump meanwhile).
IDLE_RESYNC_SECONDS = 20.0
FILLER_GAS = 21_000
#: Seconds a sent transaction may stay unmined before its account is checked for
#: a nonce gap below it (the chain lost earlier transactions: a restored dev chain).
GAP_CHECK_SECONDS = 1.0

# -- signing ------------------------------------------------------------------


def signed_transaction(account: LocalAccount, tx: Mapping[str, Any]) -> tuple[bytes, str]:
    """Sign an EIP-1559 (``type`` 2) or legacy EIP-155 (``type`` 0) transaction
    with ``account`` (eth-account). ``tx`` has ``chainId, nonce, gas, to (None to
    create), value, data`` and either ``maxFeePerGas``/``maxPriorityFeePerGas``
    or ``gasPrice``. Returns the raw transaction and its hash (0x-hex)."""
    fields = dict(tx)
    to = fields.pop("to", None)
    if to:  # None: contract creation. 20 bytes: any hex case (eth-account wants checksums)
        fields["to"] = bytes.fromhex(to[2:]) if isinstance(to, str) else bytes(to)
    if int(fields.get("type", 2)) == 0:
        fields.pop("type")  # eth-account knows a legacy transaction by its gasPrice
    signed = account.sign_transaction(cast(Any, fields))
    return bytes(signed.raw_transaction), "0x" + bytes(signed.hash).hex()


# -- gas ----------------------------------------------------------------------


class GasPolicy(Protocol):
    """Fee fields for the next transactions (``type`` + prices, no gas limit)."""

    name: str

    def fees(self) -> dict[str, int]: ...

    def refresh(self) -> None: ...


class FreeGas:
    """A free-gas network (Besu ``--min-gas-price=0`` with ``zeroBaseFee``):
    legacy transactions with ``gasPrice`` 0, which Besu accepts before and
    after London; EIP-1559 with zero fees needs ``zeroBaseFee`` as well."""

    name = "free"

    def fees(self) -> dict[str, int]:
        return {"type": 0, "gasPrice": 0}

    def refresh(self) -> None:
        return None


class LegacyGas:
    """Pre-London networks: ``gasPrice`` from ``eth_gasPrice``, cached briefly."""

    name = "legacy"

    def __init__(self, conn: Connection, ttl: float = 2.0) -> None:
        self.conn, self.ttl = conn, ttl
        self._price: int | None = None
        self._at = 0.0

    def fees(self) -> dict[str, int]:
        if self._price is None or time.monotonic() - self._at > self.ttl:
            self._price = int(self.conn.request("eth_gasPrice", []), 16)
            self._at = time.monotonic()
        return {"type": 0, "gasPrice": self._price}

    def refresh(self) -> None:
        self._price = None


class Eip1559Gas:
    """EIP-1559 fees: tip from ``eth_maxPriorityFeePerGas``, max fee = 2 × the
    next block's base fee (from ``eth_feeHistory``) + tip, so a few full blocks
    in a row cannot price us out. Cached for ``ttl`` seconds; a "fee below base
    fee" refusal refreshes it."""

    name = "eip1559"

    def __init__(self, conn: Connection, ttl: float = 2.0) -> None:
        self.conn, self.ttl = conn, ttl
        self._fees: dict[str, int] | None = None
        self._at = 0.0
        self._lock = threading.Lock()

    def fees(self) -> dict[str, int]:
        with self._lock:
            if self._fees is None or time.monotonic() - self._at > self.ttl:
                hist = self.conn.request("eth_feeHistory", [1, "latest", []])
                base = int(hist["baseFeePerGas"][-1], 16)
                try:
                    tip = int(self.conn.request("eth_maxPriorityFeePerGas", []), 16)
                except RpcError:
                    tip = 10**9
                self._fees = {
                    "type": 2,
                    "maxFeePerGas": 2 * base + tip,
                    "maxPriorityFeePerGas": tip,
                }
                self._at = time.monotonic()
            return dict(self._fees)

    def refresh(self) -> None:
        with self._lock:
            self._fees = None


GasMode = Literal["auto", "eip1559", "legacy", "free"]


def gas_policy(conn: Connection, mode: GasMode = "auto") -> GasPolicy:
    """The gas policy for ``mode``; ``auto`` picks free gas when the node's gas
    price and the latest base fee are both zero, EIP-1559 when blocks carry a
    base fee, legacy otherwise."""
    if mode == "free":
        return FreeGas()
    if mode == "eip1559":
        return Eip1559Gas(conn)
    if mode == "legacy":
        return LegacyGas(conn)
    block = conn.request("eth_getBlockByNumber", ["latest", False]) or {}
    base_fee = block.get("baseFeePerGas")
    price = int(conn.request("eth_gasPrice", []), 16)
    if price == 0 and (base_fee is None or int(base_fee, 16) == 0):
        return FreeGas()
    if base_fee is not None:
        return Eip1559Gas(conn)
    return LegacyGas(conn)


# -- results ------------------------------------------------------------------


@dataclass(frozen=True)
class TxRequest:
    """A transaction to send: ``to`` (None creates a contract), call data,
    value, an optional fixed gas limit, and a label for messages."""

    to: str | None
    data: bytes
    value: int = 0
    gas: int | None = None
    label: str = "transaction"


@dataclass(frozen=True)
class Event:
    """A decoded govshare event."""

    contract: str
    name: str
    args: dict[str, Any]
    address: str
    block_number: int
    tx_hash: str
    log_index: int


@dataclass(frozen=True)
class TxResult:
    """A mined, successful transaction and the govshare events it emitted."""

    tx_hash: str
    block_number: int
    block_hash: str
    gas_used: int
    sender: str
    nonce: int
    contract_address: str | None
    events: tuple[Event, ...] = ()

    def event(self, name: str) -> Event:
        """The first event called ``name`` (raises ``ChainError`` if none)."""
        for ev in self.events:
            if ev.name == name:
                return ev
        raise ChainError(
            f"Transaction {self.tx_hash} emitted no {name} event; the contracts and "
            "govshare do not match.",
            tx_hash=self.tx_hash,
        )

    def events_named(self, name: str) -> list[Event]:
        return [ev for ev in self.events if ev.name == name]


LogDecoder = Callable[[Mapping[str, Any]], Event | None]
RevertDecoder = Callable[[bytes, str, str | None], GovShareError]


@dataclass
class PendingTx:
    """A transaction the node accepted; :meth:`wait` for its receipt."""

    tx_hash: str
    sender: str
    nonce: int
    request: TxRequest
    gas: int
    _sender_obj: Sender = field(repr=False)
    # The signing account (the caller holds it anyway): lets a wait fill a nonce gap.
    _account: LocalAccount | None = field(default=None, repr=False)

    def wait(self, timeout: float | None = None) -> TxResult:
        return self._sender_obj.wait(self, timeout)


@dataclass(frozen=True)
class SignedTx:
    """A signed transaction not sent yet (see :meth:`Sender.sign`)."""

    raw: bytes
    tx_hash: str
    sender: str
    nonce: int
    request: TxRequest
    gas: int


# -- nonce state --------------------------------------------------------------

#: Transactions per chunk of a send round (see :meth:`Sender._sign_and_send`), at
#: most ``max_batch``: one JSON-RPC batch each. Small batches cost a node more per
#: transaction (anvil takes 100 in about a third of the time per transaction that
#: it takes 32), so the chunks are large and a round holds several of them.
SIGN_CHUNK = 100
#: Batches of ``max_batch`` transactions in one send round at most: the next chunk
#: is signed while the node works on the one before.
ROUND_BATCHES = 10


@dataclass
class _Round:
    """What became of one send round: ``signed`` in order, the first ``sent`` of
    them sent; ``answers``: the node's, one for each of the first ones;
    ``failed``: the error that cut the sends short (those sent but not answered
    are in doubt); ``unsigned``: the error that stopped signing. Nothing from
    ``sent`` on reached the node."""

    signed: list[tuple[bytes, str]] = field(default_factory=list)
    sent: int = 0
    answers: list[Any] = field(default_factory=list)
    failed: Exception | None = None
    unsigned: Exception | None = None


@dataclass
class _Job:
    account: LocalAccount
    request: TxRequest
    gas: int
    done: threading.Event = field(default_factory=threading.Event)
    pending: PendingTx | None = None
    error: BaseException | None = None
    retries: int = 0

    def finish(self, pending: PendingTx | None = None, error: BaseException | None = None) -> None:
        self.pending, self.error = pending, error
        self.done.set()


class AccountState:
    """The nonce allocator of one account on one node (see the module docstring)."""

    def __init__(self, address: str) -> None:
        self.address = address
        self.send_lock = threading.Lock()
        self.queue_lock = threading.Lock()
        self.queue: list[_Job] = []
        self.next_nonce: int | None = None
        self.last_used = 0.0
        self.epoch = -1

    def invalidate(self) -> None:
        """Forget the nonce: the next send reads it from the node."""
        self.next_nonce = None


_REGISTRY: dict[tuple[str, str, str], AccountState] = {}
_REGISTRY_LOCK = threading.Lock()


def account_state(url: str, address: str, genesis: str = "") -> AccountState:
    """The allocator of ``address`` on the node at ``url`` whose genesis block is
    ``genesis`` (a dev chain reset at the same URL is a different chain)."""
    key = (url.rstrip("/"), genesis, address.lower())
    with _REGISTRY_LOCK:
        state = _REGISTRY.get(key)
        if state is None:
            state = _REGISTRY[key] = AccountState(to_checksum_address(address))
        return state


def _classify(err: RpcError) -> str:
    msg = err.normalized
    if "already known" in msg or "already imported" in msg or "known transaction" in msg:
        return "known"
    if "nonce too low" in msg or "nonce is too low" in msg or "replacement" in msg:
        return "nonce"
    if "base fee" in msg or "underpriced" in msg or "gas price below" in msg:
        return "fee"
    return "fatal"


def _rejected(err: RpcError, label: str, tx_hash: str) -> ChainRejected:
    msg = err.normalized
    if "insufficient funds" in msg or "up front cost" in msg or "upfront cost" in msg:
        text = (
            f"The node refused {label}: the sending account cannot pay for the gas. "
            "Fund the account, or run the network with free gas."
        )
    else:
        text = f"The node refused {label}: {err.rpc_message}."
    return ChainRejected(text, rpc_code=err.rpc_code, rpc_message=err.rpc_message, tx_hash=tx_hash)


# -- the sender ---------------------------------------------------------------


class Sender:
    """Signs, sends and waits for transactions on one connection."""

    def __init__(
        self,
        conn: Connection,
        *,
        gas: GasPolicy | GasMode = "auto",
        revert_decoder: RevertDecoder | None = None,
        log_decoder: LogDecoder | None = None,
        gas_margin: float = DEFAULT_GAS_MARGIN,
        receipt_timeout: float = DEFAULT_RECEIPT_TIMEOUT,
        max_batch: int = 200,
        unavailable_grace: float = DEFAULT_UNAVAILABLE_GRACE,
    ) -> None:
        self.conn = conn
        self.gas = gas_policy(conn, gas) if isinstance(gas, str) else gas
        self.revert_decoder = revert_decoder
        self.log_decoder = log_decoder
        self.gas_margin = gas_margin
        self.receipt_timeout = receipt_timeout
        # A node that stops answering is not a slow block: waiting for a receipt
        # gives up after this long without an answer (the caller's outbox retries).
        self.unavailable_grace = unavailable_grace
        self.max_batch = max_batch
        self._block_gas_limit: int | None = None
        self._use_access_list = True

    # -- preparing --------------------------------------------------------------

    def _gas_cap(self) -> int:
        if self._block_gas_limit is None:
            block = self.conn.request("eth_getBlockByNumber", ["latest", False]) or {}
            self._block_gas_limit = int(block.get("gasLimit", hex(30_000_000)), 16)
        return self._block_gas_limit

    def _estimate_params(self, account: LocalAccount, req: TxRequest) -> dict[str, Any]:
        params: dict[str, Any] = {"from": account.address, "data": "0x" + req.data.hex()}
        if req.to:
            params["to"] = req.to
        if req.value:
            params["value"] = hex(req.value)
        return params

    def _with_margin(self, estimate: int) -> int:
        return min(int(estimate * self.gas_margin) + GAS_SLACK, self._gas_cap())

    def _gas_call(self, params: dict[str, Any]) -> tuple[str, list[Any]]:
        # On the pending block, as the transaction will run: on the latest one a
        # contract that stores block.timestamp (updatedAt) finds the value the last
        # transaction stored, the write looks free, and the estimate falls short
        # (geth --dev, a block a second: removeAdmin ran out of gas every time).
        if self._use_access_list:
            return "eth_createAccessList", [params, "pending"]
        return "eth_estimateGas", [params, "pending"]

    def _gas_from(self, account: LocalAccount, req: TxRequest, answer: Any) -> int | None:
        """Gas used from an answer of :meth:`_gas_call`; raises the decoded revert.
        None means "ask eth_estimateGas instead"."""
        if isinstance(answer, RpcError):
            msg = answer.normalized
            unsupported = answer.rpc_code == -32601 or "not supported" in msg or "not found" in msg
            if unsupported and answer.revert_data() is None:
                self._use_access_list = False  # a node without eth_createAccessList
                return None
            self._raise_revert(answer, req.label, account.address)
        if isinstance(answer, dict):
            if answer.get("error"):  # geth reports a revert inside the result, without data
                return None
            return int(answer["gasUsed"], 16)
        return int(answer, 16)

    def estimate(self, account: LocalAccount, req: TxRequest) -> int:
        """Gas for ``req`` with the safety margin; a revert raises the contract's error.

        One execution (``eth_createAccessList`` reports the gas it used) instead of
        ``eth_estimateGas``'s binary search, which costs anvil 4-5x more. The margin
        covers what that number leaves out: refunds (at most a fifth of the gas
        used since EIP-3529, hence x1.25), cold-access costs the access list would
        have prepaid, and the 1/64 kept back at each external call."""
        if req.gas is not None:
            return req.gas
        params = self._estimate_params(account, req)
        method, args = self._gas_call(params)
        try:
            answer: Any = self.conn.request(method, args)
        except RpcError as exc:
            answer = exc
        used = self._gas_from(account, req, answer)
        if used is None:
            try:
                used = int(self.conn.request("eth_estimateGas", [params, "pending"]), 16)
            except RpcError as exc:
                self._raise_revert(exc, req.label, account.address)
        return self._with_margin(used)

    def estimate_many(self, account: LocalAccount, reqs: Sequence[TxRequest]) -> list[int]:
        """:meth:`estimate` for several requests, in batches."""
        todo = [i for i, r in enumerate(reqs) if r.gas is None]
        out = [r.gas or 0 for r in reqs]
        for start in range(0, len(todo), self.max_batch):
            chunk = todo[start : start + self.max_batch]
            answers = self.conn.batch(
                [self._gas_call(self._estimate_params(account, reqs[i])) for i in chunk]
            )
            for i, ans in zip(chunk, answers, strict=True):
                used = self._gas_from(account, reqs[i], ans)
                out[i] = (
                    self._with_margin(used) if used is not None else self.estimate(account, reqs[i])
                )
        return out

    def _raise_revert(self, exc: RpcError, label: str, sender: str | None) -> NoReturn:
        data = exc.revert_data()
        if data is not None:
            if self.revert_decoder is not None:
                raise self.revert_decoder(data, label, sender) from exc
            raise ContractReverted(f"The contract refused {label}.", reason="") from exc
        raise exc

    # -- sending ----------------------------------------------------------------

    def submit(self, account: LocalAccount, req: TxRequest) -> PendingTx:
        """Estimate (unless ``req.gas``), sign and send; returns once the node
        accepted the transaction. Errors: the contract's decoded revert,
        :class:`ChainRejected`, :class:`ChainUnavailable`."""
        return self.submit_many(account, [req])[0]

    def submit_many(self, account: LocalAccount, reqs: Sequence[TxRequest]) -> list[PendingTx]:
        """Send several transactions from one account, in this order. Estimates
        all first (one batch request): if any would revert, nothing is sent."""
        gases = (
            [self.estimate(account, reqs[0])]
            if len(reqs) == 1
            else self.estimate_many(account, reqs)
        )
        jobs = [_Job(account, r, g) for r, g in zip(reqs, gases, strict=True)]
        state = account_state(self.conn.url, account.address, self.conn.genesis_hash)
        with state.queue_lock:
            state.queue.extend(jobs)
        for job in jobs:
            if not job.done.is_set():
                self._lead(state, job)
        out: list[PendingTx] = []
        first_error: BaseException | None = None
        for job in jobs:
            job.done.wait()
            if job.error is not None:
                first_error = first_error or job.error
            elif job.pending is not None:
                out.append(job.pending)
        if first_error is not None:
            if isinstance(first_error, GovShareError):
                # The caller must know which of the others are on their way.
                first_error.details["sent"] = [p.tx_hash for p in out]
            raise first_error
        return out

    def sign(self, account: LocalAccount, req: TxRequest) -> SignedTx:
        """Estimate (unless ``req.gas``; a revert is raised here, costing no
        nonce) and sign ``req`` with the account's next nonce, without sending it:
        for a caller that must keep the signed bytes before they go out (an
        administrator's decision, journaled so the broker can send it again if
        the chain loses it). Send it with :meth:`send_signed`."""
        gas = self.estimate(account, req)
        state = account_state(self.conn.url, account.address, self.conn.genesis_hash)
        with state.send_lock:
            # Always the node's pending count, never the cached one: these bytes are
            # kept and sent again as they are, so no resync can renumber them later.
            # The cache is stale whenever another process used the key since (the
            # CLI, a broker resending a journaled decision) or the chain lost blocks.
            state.invalidate()
            nonce = self._sync_nonce(state)
            fees = self.gas.fees()
            raw, tx_hash = self._sign(_Job(account, req, gas), nonce, fees)
            state.next_nonce = nonce + 1
        return SignedTx(raw, tx_hash, account.address, nonce, req, gas)

    def send_signed(self, signed: SignedTx) -> PendingTx:
        """Broadcast a transaction from :meth:`sign` (again, if need be: a node
        that has it already answers "known", and one that mined it already
        "nonce too low": both are this transaction on its way). Raises
        :class:`ChainRejected` (``nonce_used`` in its details) when its nonce was
        used by another transaction since; the account's nonce is then re-read
        from the node before its next send."""
        try:
            self.conn.send_raw_transaction(signed.raw)
        except RpcError as exc:
            kind = _classify(exc)
            if kind == "nonce":
                state = account_state(self.conn.url, signed.sender, self.conn.genesis_hash)
                state.invalidate()  # another transaction took the slot: resync next time
                if not self._node_has(signed.tx_hash):
                    err = _rejected(exc, signed.request.label, signed.tx_hash)
                    err.details["nonce_used"] = True
                    raise err from exc
            elif kind != "known":
                raise _rejected(exc, signed.request.label, signed.tx_hash) from exc
        return PendingTx(
            signed.tx_hash, signed.sender, signed.nonce, signed.request, signed.gas, self
        )

    def _node_has(self, tx_hash: str) -> bool:
        """Whether the node knows ``tx_hash`` (pooled or mined)."""
        return self.conn.request("eth_getTransactionByHash", [tx_hash]) is not None

    def _lead(self, state: AccountState, job: _Job) -> None:
        with state.send_lock:
            while not job.done.is_set():
                with state.queue_lock:
                    size = self.max_batch * ROUND_BATCHES
                    jobs, state.queue = state.queue[:size], state.queue[size:]
                if not jobs:  # pragma: no cover - our job is queued until done
                    break
                self._send_round(state, jobs)

    def _sync_nonce(self, state: AccountState) -> int:
        now = time.monotonic()
        epoch = node_epoch(self.conn.url)
        if (
            state.next_nonce is None
            or state.epoch != epoch
            or now - state.last_used > IDLE_RESYNC_SECONDS
        ):
            state.next_nonce = self.conn.get_transaction_count(state.address, "pending")
            state.epoch = epoch
        state.last_used = now
        return state.next_nonce

    def _sign(self, job: _Job, nonce: int, fees: Mapping[str, int]) -> tuple[bytes, str]:
        tx = {
            "chainId": self.conn.chain_id,
            "nonce": nonce,
            "gas": job.gas,
            "to": job.request.to,
            "value": job.request.value,
            "data": job.request.data,
            **fees,
        }
        return signed_transaction(job.account, tx)

    def _send_raw(self, raws: Sequence[bytes]) -> list[Any]:
        if len(raws) == 1:
            try:
                return [self.conn.send_raw_transaction(raws[0])]
            except RpcError as exc:
                return [exc]
        return self.conn.batch([("eth_sendRawTransaction", ["0x" + r.hex()]) for r in raws])

    def _send_round(self, state: AccountState, jobs: list[_Job]) -> None:
        """Send ``jobs`` with consecutive nonces; finish each, or requeue it at
        the front for a retry after a resync. Never returns with a job of
        ``jobs`` neither finished nor requeued."""
        try:
            self._send_round_inner(state, jobs)
        except BaseException as exc:
            state.invalidate()
            for job in jobs:
                if not job.done.is_set():
                    job.finish(error=exc)
            if not isinstance(exc, Exception):
                raise

    def _sign_and_send(self, jobs: list[_Job], base: int, fees: Mapping[str, int]) -> _Round:
        """Sign ``jobs`` with nonces from ``base`` and send them, in order, in
        chunks of :data:`SIGN_CHUNK`: the node works on one chunk while the next
        is signed (eth-account takes about as long to sign a transaction as anvil
        to mine one). The node gets the same transactions in the same order as
        from one batch; nothing is sent after a chunk whose send failed."""
        out = _Round()
        size = min(SIGN_CHUNK, self.max_batch)
        chunks = [jobs[i : i + size] for i in range(0, len(jobs), size)]

        def send(raws: list[bytes]) -> None:
            try:
                out.answers.extend(self._send_raw(raws))
            except Exception as exc:  # noqa: BLE001 — handed to the round (the jobs are in doubt)
                out.failed = exc

        sending: threading.Thread | None = None
        try:
            for n, chunk in enumerate(chunks):
                first = base + len(out.signed)
                part = [self._sign(job, first + i, fees) for i, job in enumerate(chunk)]
                out.signed.extend(part)
                if sending is not None:
                    sending.join()
                if out.failed is not None:
                    break
                raws = [raw for raw, _ in part]
                out.sent += len(raws)
                if n == len(chunks) - 1:
                    send(raws)  # nothing left to sign meanwhile
                else:
                    sending = threading.Thread(target=send, args=(raws,), daemon=True)
                    sending.start()
        # Signing failed: the chunks sent before stay sent, the rest fail their jobs.
        except Exception as exc:  # noqa: BLE001 — each unsent job's caller gets it
            out.unsigned = exc
        finally:
            if sending is not None:
                sending.join()
        return out

    def _send_round_inner(self, state: AccountState, jobs: list[_Job]) -> None:  # noqa: C901 — every outcome of a sent round, job by job
        base = self._sync_nonce(state)
        fees = self.gas.fees()
        rnd = self._sign_and_send(jobs, base, fees)
        answered = len(rnd.answers)
        if rnd.failed is not None or rnd.unsigned is not None:
            # Not all of the round reached the node: read the nonce from it next time.
            state.invalidate()
        if rnd.failed is not None:
            exc = rnd.failed
            if isinstance(exc, ChainUnavailable):
                node_went_away(self.conn.url)
            # Those of the chunk that failed may or may not have arrived.
            in_doubt = zip(jobs[answered : rnd.sent], rnd.signed[answered : rnd.sent], strict=True)
            for job, (_, tx_hash) in in_doubt:
                if not isinstance(exc, ChainUnavailable):
                    job.finish(error=exc)
                    continue
                job.finish(
                    error=ChainUnavailable(
                        f"{exc.message} The transaction ({job.request.label}) may or may "
                        f"not have been received; its hash is {tx_hash}.",
                        tx_hash=tx_hash,
                        **exc.details,
                    )
                )
        for job in jobs[rnd.sent :]:
            job.finish(error=rnd.failed or rnd.unsigned)  # never sent

        answers = rnd.answers
        kinds = ["ok" if not isinstance(a, RpcError) else _classify(a) for a in answers]
        last_ok = max((i for i, k in enumerate(kinds) if k in ("ok", "known")), default=-1)
        retry: list[_Job] = []
        stale = rnd.failed is not None
        for i, (job, kind, answer) in enumerate(zip(jobs, kinds, answers, strict=False)):
            nonce, tx_hash = base + i, rnd.signed[i][1]
            if kind in ("ok", "known"):
                job.finish(
                    PendingTx(
                        tx_hash, state.address, nonce, job.request, job.gas, self, job.account
                    )
                )
                continue
            assert isinstance(answer, RpcError)
            if kind == "nonce":
                stale = True  # another sender used this key: the slot is taken
            else:
                if kind == "fee":
                    self.gas.refresh()
                if i < last_ok and not self._fill(state, job.account, nonce):
                    stale = True
            if kind in ("nonce", "fee") and job.retries < 3:
                job.retries += 1
                retry.append(job)
            else:
                job.finish(error=_rejected(answer, job.request.label, tx_hash))
        state.next_nonce = None if stale else base + last_ok + 1
        if retry:
            with state.queue_lock:
                state.queue[:0] = retry

    def _fill(self, state: AccountState, account: LocalAccount, nonce: int) -> bool:
        """Occupy ``nonce`` with a 0-value self-transfer so later ones can mine.
        False if that failed too (the caller resyncs; the next send fills it)."""
        self.gas.refresh()
        raw, _ = signed_transaction(
            account,
            {
                "chainId": self.conn.chain_id,
                "nonce": nonce,
                "gas": FILLER_GAS,
                "to": state.address,
                "value": 0,
                "data": b"",
                **self.gas.fees(),
            },
        )
        try:
            self.conn.send_raw_transaction(raw)
        except RpcError as exc:
            return _classify(exc) in ("nonce", "known")
        except ChainError:
            return False
        return True

    # -- waiting ----------------------------------------------------------------

    def wait(self, pending: PendingTx, timeout: float | None = None) -> TxResult:
        """The receipt of ``pending``; raises the decoded revert if it failed,
        :class:`TransactionTimeout` if it is not mined within ``timeout``."""
        return self.wait_many([pending], timeout)[0]

    def wait_many(  # noqa: C901 — one poll loop with its timeout and outage exits
        self, pendings: Sequence[PendingTx], timeout: float | None = None
    ) -> list[TxResult]:
        """Receipts of several transactions. Polls only the highest-nonce
        transaction of each account (lower nonces are mined no later), then
        fetches the receipts in batches."""
        limit = self.receipt_timeout if timeout is None else timeout
        deadline = time.monotonic() + limit
        receipts: dict[str, dict[str, Any]] = {}
        last_of: dict[str, PendingTx] = {}
        for p in pendings:
            if p.sender not in last_of or p.nonce > last_of[p.sender].nonce:
                last_of[p.sender] = p
        interval = 0.002
        fetched_rest = False
        gap_check_at = time.monotonic() + GAP_CHECK_SECONDS
        last_unavailable: ChainUnavailable | None = None
        down_since: float | None = None
        while True:
            todo = [p.tx_hash for p in last_of.values() if p.tx_hash not in receipts]
            if not todo:
                todo = [p.tx_hash for p in pendings if p.tx_hash not in receipts]
                if not todo:
                    break
            try:
                self._fetch_receipts(todo, receipts)
                last_unavailable = down_since = None
            except ChainUnavailable as exc:
                node_went_away(self.conn.url)
                last_unavailable = exc
                down_since = down_since or time.monotonic()
            if all(p.tx_hash in receipts for p in pendings):
                break
            gone = down_since is not None and (
                time.monotonic() - down_since >= self.unavailable_grace
            )
            if time.monotonic() >= deadline or gone:
                missing = [p for p in pendings if p.tx_hash not in receipts]
                for p in missing:
                    account_state(self.conn.url, p.sender, self.conn.genesis_hash).invalidate()
                if last_unavailable is not None:
                    raise ChainUnavailable(
                        f"{last_unavailable.message} Transaction {missing[0].tx_hash} was sent "
                        "but its outcome is unknown.",
                        tx_hash=missing[0].tx_hash,
                    )
                raise TransactionTimeout(
                    f"Transaction {missing[0].tx_hash} ({missing[0].request.label}) was sent "
                    f"but not mined within {limit:g}s. "
                    "It may still be mined: check again later before re-sending.",
                    tx_hash=missing[0].tx_hash,
                    pending=len(missing),
                    **self._stuck_diagnosis(missing[0]),
                )
            if not fetched_rest and all(p.tx_hash in receipts for p in last_of.values()):
                fetched_rest = True
                continue  # the rest are mined too: fetch them now
            if down_since is None and time.monotonic() >= gap_check_at:
                gap_check_at = time.monotonic() + GAP_CHECK_SECONDS
                self._mend_gaps([p for p in pendings if p.tx_hash not in receipts])
            time.sleep(interval)
            # Fast on anvil (mined within milliseconds), gentle on 2 s QBFT blocks.
            interval = min(interval * 1.5, 0.05)
        return [self._result(p, receipts[p.tx_hash]) for p in pendings]

    def _mend_gaps(self, missing: Sequence[PendingTx]) -> None:
        """Unmined transactions that can never be mined as they stand: the node
        lost lower nonces of their account (a dev chain restored from an older
        dump, a reorg that dropped them). Fill the gap below each with 0-value
        self-transfers, so it mines; and give up on one the node no longer knows
        while its nonce is taken (:class:`TransactionDropped`, so the caller's
        resumed step checks the chain and sends again)."""
        lowest: dict[str, PendingTx] = {}
        for p in missing:
            if p.sender not in lowest or p.nonce < lowest[p.sender].nonce:
                lowest[p.sender] = p
        for address, p in lowest.items():
            try:
                if self.conn.request("eth_getTransactionByHash", [p.tx_hash]) is None:
                    account_state(self.conn.url, address, self.conn.genesis_hash).invalidate()
                    raise TransactionDropped(
                        f"Transaction {p.tx_hash} ({p.request.label}) is gone: the node no "
                        "longer knows it (the chain lost it). Check the chain before sending "
                        "again.",
                        tx_hash=p.tx_hash,
                        nonce=p.nonce,
                    )
                pool_next = self.conn.get_transaction_count(address, "pending")
            except ChainUnavailable:
                return  # the wait loop reports the node going away
            if pool_next >= p.nonce or p._account is None:
                continue  # no gap below it: the block is merely slow
            state = account_state(self.conn.url, address, self.conn.genesis_hash)
            with state.send_lock:
                for nonce in range(pool_next, p.nonce):
                    self._fill(state, p._account, nonce)
            log.warning(
                "sender: %s's nonces %d-%d were lost by the chain; filled so that %s mines",
                address,
                pool_next,
                p.nonce - 1,
                p.tx_hash,
            )

    def _stuck_diagnosis(self, p: PendingTx) -> dict[str, Any]:
        """What the node says about a transaction that is not mined (for the
        error's details): still pooled? nonces around it?"""
        out: dict[str, Any] = {"nonce": p.nonce}
        try:
            out["node_has_tx"] = (
                self.conn.request("eth_getTransactionByHash", [p.tx_hash]) is not None
            )
            out["mined_nonce"] = self.conn.get_transaction_count(p.sender, "latest")
            out["pending_nonce"] = self.conn.get_transaction_count(p.sender, "pending")
        except ChainError:
            pass
        return out

    def _fetch_receipts(self, hashes: Sequence[str], into: dict[str, dict[str, Any]]) -> None:
        for start in range(0, len(hashes), self.max_batch):
            chunk = hashes[start : start + self.max_batch]
            answers = (
                [self.conn.get_receipt(chunk[0])]
                if len(chunk) == 1
                else self.conn.batch([("eth_getTransactionReceipt", [h]) for h in chunk])
            )
            for h, ans in zip(chunk, answers, strict=True):
                if isinstance(ans, RpcError):
                    raise ans
                if ans:
                    into[h] = ans

    def _result(self, pending: PendingTx, receipt: Mapping[str, Any]) -> TxResult:
        block = int(receipt["blockNumber"], 16)
        if int(receipt.get("status", "0x1"), 16) != 1:
            self._explain_failure(pending, block)
        events: list[Event] = []
        if self.log_decoder is not None:
            for log in receipt.get("logs", ()):
                ev = self.log_decoder(log)
                if ev is not None:
                    events.append(ev)
        created = receipt.get("contractAddress")
        return TxResult(
            tx_hash=pending.tx_hash,
            block_number=block,
            block_hash=str(receipt["blockHash"]),
            gas_used=int(receipt["gasUsed"], 16),
            sender=pending.sender,
            nonce=pending.nonce,
            contract_address=to_checksum_address(created) if created else None,
            events=tuple(events),
        )

    def _explain_failure(self, pending: PendingTx, block: int) -> None:
        """Replay a failed transaction as a call on the state before its block
        to learn the contract's error."""
        req = pending.request
        params: dict[str, Any] = {
            "from": pending.sender,
            "data": "0x" + req.data.hex(),
            "gas": hex(pending.gas),
        }
        if req.to:
            params["to"] = req.to
        if req.value:
            params["value"] = hex(req.value)
        try:
            self.conn.request("eth_call", [params, hex(max(block - 1, 0))])
        except RpcError as exc:
            if exc.revert_data() is not None:
                try:
                    self._raise_revert(exc, req.label, pending.sender)
                except ContractReverted as rev:
                    rev.details["tx_hash"] = pending.tx_hash
                    raise
        raise ContractReverted(
            f"{req.label} failed in block {block} (transaction {pending.tx_hash}) without "
            f"a reason; it may have run out of gas (limit {pending.gas}).",
            reason="",
            tx_hash=pending.tx_hash,
        )

    # -- one call does it all ---------------------------------------------------

    def transact(
        self, account: LocalAccount, req: TxRequest, timeout: float | None = None
    ) -> TxResult:
        """Send ``req`` and wait for its receipt."""
        return self.wait(self.submit(account, req), timeout)

    def transact_many(
        self, account: LocalAccount, reqs: Sequence[TxRequest], timeout: float | None = None
    ) -> list[TxResult]:
        return self.wait_many(self.submit_many(account, reqs), timeout)

    async def transact_async(
        self, account: LocalAccount, req: TxRequest, timeout: float | None = None
    ) -> TxResult:
        """:meth:`transact` for asyncio code (runs in a worker thread)."""
        return await asyncio.to_thread(self.transact, account, req, timeout)

    async def submit_async(self, account: LocalAccount, req: TxRequest) -> PendingTx:
        return await asyncio.to_thread(self.submit, account, req)

    async def wait_async(self, pending: PendingTx, timeout: float | None = None) -> TxResult:
        return await asyncio.to_thread(self.wait, pending, timeout)

    def deploy(
        self, account: LocalAccount, bytecode: bytes, label: str, timeout: float | None = None
    ) -> TxResult:
        """Create a contract from ``bytecode`` (constructor arguments appended)."""
        return self.transact(account, TxRequest(to=None, data=bytecode, label=label), timeout)
