"""One JSON-RPC connection to a chain node, over httpx.

What a :class:`Connection` does, and why:

* One ``httpx.Client`` per connection: keep-alive (an ``eth_call`` on anvil
  takes less time than a new TCP connection), a bounded pool shared by the
  threads of a broker, and a timeout on every request. :meth:`Connection.close`
  (or ``with``) releases its sockets.
* The chain id is read once, when connecting, and cached: every transaction is
  signed locally with it, so nothing asks the node again.
* Answers are plain JSON: numbers, hashes and data stay 0x-hex strings, blocks
  included. A Besu QBFT block's ``extraData`` (about a hundred bytes, not the
  32 of a mainnet header) is just a longer string here.
* Batches: several requests in one HTTP round trip, answers matched by id (a
  node may answer them in any order), each item a result or an
  :class:`RpcError`. Batches of ``eth_sendRawTransaction`` are how the sender
  sends a group of transactions.
* A read whose keep-alive connection the node (or a proxy) had closed while it
  sat in the pool is sent once more at once; a transaction never is (its
  outcome is then unknown, and the sender resynchronises instead).
* Errors: a transport failure becomes :class:`ChainUnavailable` with a sentence
  saying what to do (and :func:`node_went_away` is told), a node's error object
  becomes :class:`RpcError`, and a revert becomes the contract's decoded custom
  error (through ``revert_decoder``). Nothing from httpx leaks past this module.
"""

from __future__ import annotations

import itertools
import json
import threading
import weakref
from collections.abc import Callable, Sequence
from types import TracebackType
from typing import Any, NoReturn, cast

import httpx

from govshare.errors import ChainError, ChainRejected, ChainUnavailable, GovShareError

DEFAULT_TIMEOUT = 10.0

# JSON-RPC methods whose failure on a dropped connection is safe to retry once
# (reads; a raw transaction is never re-sent here: the sender resyncs instead).
_RETRY_METHODS = frozenset(
    {
        "eth_chainId",
        "eth_blockNumber",
        "eth_getBlockByNumber",
        "eth_getBlockByHash",
        "eth_getCode",
        "eth_getBalance",
        "eth_getTransactionCount",
        "eth_getTransactionByHash",
        "eth_getTransactionReceipt",
        "eth_getLogs",
        "eth_call",
        "eth_estimateGas",
        "eth_createAccessList",
        "eth_feeHistory",
        "eth_gasPrice",
        "eth_maxPriorityFeePerGas",
    }
)

# How a pooled keep-alive connection that the other side closed shows up when it
# is reused: nothing, or a reset, instead of an answer. (Not ConnectError: a node
# that refuses connections is down, and is reported at once.)
_DROPPED: tuple[type[Exception], ...] = (
    httpx.RemoteProtocolError,
    httpx.ReadError,
    httpx.WriteError,
)

# Enough for a broker's request threads, workers and mirror at once; idle
# connections are closed after a few seconds, well before any node's own idle
# timeout (so a reused one is rarely found dropped).
_LIMITS = httpx.Limits(max_connections=64, max_keepalive_connections=32, keepalive_expiry=5.0)
_HEADERS = {"Content-Type": "application/json", "Accept": "application/json"}

RevertDecoder = Callable[[bytes, str, str | None], GovShareError]

# Bumped whenever a node was unreachable or its chain was seen to change under a
# follower (a reorg, a dev chain restored from an older dump): nonce allocators
# of that URL re-read their account's nonce before their next send.
_EPOCHS: dict[str, int] = {}
_EPOCHS_LOCK = threading.Lock()


def node_went_away(url: str) -> None:
    """Mark what was learnt from the node at ``url`` (nonces) as stale."""
    key = url.rstrip("/")
    with _EPOCHS_LOCK:
        _EPOCHS[key] = _EPOCHS.get(key, 0) + 1


def node_epoch(url: str) -> int:
    """How many times the node at ``url`` went away (see :func:`node_went_away`)."""
    return _EPOCHS.get(url.rstrip("/"), 0)


class RpcError(ChainRejected):
    """The node answered a JSON-RPC request with an error object."""

    def __init__(self, method: str, error: dict[str, Any], url: str) -> None:
        self.method = method
        try:
            self.rpc_code = int(error.get("code", 0) or 0)
        except (TypeError, ValueError):
            self.rpc_code = 0
        self.rpc_message = str(error.get("message", ""))
        self.rpc_data = error.get("data")
        super().__init__(
            f"The chain node at {url} refused {method}: {self.rpc_message}",
            method=method,
            rpc_code=self.rpc_code,
            rpc_message=self.rpc_message,
        )

    @property
    def normalized(self) -> str:
        """Lower-case message with Besu's ``UPPER_SNAKE`` reasons made comparable."""
        return self.rpc_message.lower().replace("_", " ")

    def revert_data(self) -> bytes | None:
        """The revert payload if this error is a revert (``b""`` for a bare
        revert), else ``None``. anvil/geth answer code 3 with ``data``; Besu
        answers -32000 "Execution reverted" with ``data``; some nodes nest it."""
        data = self.rpc_data
        if isinstance(data, dict):
            data = data.get("data") or data.get("result")
        if isinstance(data, str) and data.startswith("0x"):
            try:
                payload = bytes.fromhex(data[2:])
            except ValueError:
                payload = None
            if payload is not None and (self.rpc_code == 3 or "revert" in self.normalized):
                return payload
        if self.rpc_code == 3 or "revert" in self.normalized:
            return b""
        return None


def _error_object(method: str, error: Any, url: str) -> RpcError:
    # A node that answers a bare string (or worse) still gets a readable error.
    return RpcError(method, error if isinstance(error, dict) else {"message": str(error)}, url)


def _unavailable(url: str, exc: BaseException, timeout: float) -> ChainUnavailable:
    if isinstance(exc, httpx.TimeoutException):
        return ChainUnavailable(
            f"The chain node at {url} did not answer within {timeout:g}s. It may be "
            "overloaded or stuck; try again shortly, or check the node's log.",
            url=url,
        )
    return ChainUnavailable(
        f"The chain node at {url} is not reachable. Check that it is running (for the "
        "local dev chain: `govshare dev chain start`) and that --rpc points to it.",
        url=url,
    )


def _http_status(url: str, status: int) -> ChainUnavailable:
    return ChainUnavailable(
        f"The chain node at {url} answered HTTP {status}. Check that "
        "the URL points to the node's JSON-RPC endpoint and that the node is healthy.",
        url=url,
        http_status=status,
    )


def _malformed(url: str) -> ChainUnavailable:
    return ChainUnavailable(
        f"The chain node at {url} answered something that is not JSON-RPC. Check that "
        "the URL points to the node's JSON-RPC endpoint and not to another service.",
        url=url,
    )


def _is_rpc_error(data: Any) -> bool:
    """Whether ``data`` is a JSON-RPC error answer (some nodes send one with an
    HTTP error status: it is still the node's answer)."""
    items = data if isinstance(data, list) else [data]
    return bool(items) and all(isinstance(i, dict) and i.get("error") is not None for i in items)


class Connection:
    """A connection to one chain node by URL (HTTP). Close it when done
    (:meth:`close`, or use it as a context manager)."""

    def __init__(
        self,
        url: str,
        *,
        timeout: float = DEFAULT_TIMEOUT,
        revert_decoder: RevertDecoder | None = None,
        expected_chain_id: int | None = None,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        """Connect to ``url``: read the chain id and the genesis block's hash.
        ``transport`` replaces the network (tests pass ``httpx.MockTransport``)."""
        self.url = url
        self.timeout = timeout
        self._revert_decoder = revert_decoder
        self._ids = itertools.count(1)
        self._closed = False
        self._http = httpx.Client(
            timeout=httpx.Timeout(timeout),
            limits=_LIMITS,
            headers=_HEADERS,
            follow_redirects=False,
            transport=transport,
        )
        # A connection dropped without close() still releases its sockets when it
        # is collected (a one-shot command need not care; long-lived owners close).
        self._release = weakref.finalize(self, self._http.close)
        try:
            self.chain_id: int = int(self.request("eth_chainId", []), 16)
            try:
                genesis = self.request("eth_getBlockByNumber", ["0x0", False])
            except RpcError:  # a pruned node may not serve block 0
                genesis = None
        except BaseException:
            self.close()
            raise
        # Identifies this chain beyond its id: a dev chain reset at the same URL
        # has another genesis block (nonce allocators are keyed by it).
        self.genesis_hash: str = str(genesis.get("hash", "")) if isinstance(genesis, dict) else ""
        if expected_chain_id is not None and expected_chain_id != self.chain_id:
            self.close()
            raise ChainRejected(
                f"The chain node at {url} is on chain {self.chain_id}, but the deployment "
                f"was made on chain {expected_chain_id}. Point --rpc to the right network.",
                url=url,
                chain_id=self.chain_id,
            )

    def __repr__(self) -> str:
        return f"Connection({self.url!r}, chain_id={self.chain_id})"

    def close(self) -> None:
        """Close the pooled HTTP connections. Using the connection afterwards
        raises :class:`ChainError`."""
        self._closed = True
        self._release()

    def __enter__(self) -> Connection:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def set_revert_decoder(self, decoder: RevertDecoder | None) -> None:
        self._revert_decoder = decoder

    # -- raw requests -----------------------------------------------------------

    def _post(self, body: bytes, retry: bool) -> Any:
        """POST one JSON-RPC body; the decoded JSON answer. Transport failures,
        HTTP errors and non-JSON answers raise :class:`ChainUnavailable`."""
        if self._closed:
            raise ChainError(
                f"The connection to the chain node at {self.url} was closed; open a new one.",
                url=self.url,
            )
        try:
            try:
                response = self._http.post(self.url, content=body)
            except _DROPPED:
                if not retry:
                    raise
                response = self._http.post(self.url, content=body)
        except (httpx.HTTPError, httpx.InvalidURL, OSError) as exc:
            node_went_away(self.url)
            raise _unavailable(self.url, exc, self.timeout) from exc
        try:
            data = json.loads(response.content)
        except ValueError:  # not JSON (or not UTF-8)
            data = None
        if not response.is_success:
            if _is_rpc_error(data):
                return data
            node_went_away(self.url)
            raise _http_status(self.url, response.status_code)
        if data is None:
            node_went_away(self.url)
            raise _malformed(self.url)
        return data

    def request(self, method: str, params: Sequence[Any]) -> Any:
        """One JSON-RPC request. Returns ``result``; raises
        :class:`ChainUnavailable` or :class:`RpcError`."""
        body = {"jsonrpc": "2.0", "id": next(self._ids), "method": method, "params": list(params)}
        answer = self._post(json.dumps(body).encode(), method in _RETRY_METHODS)
        if not isinstance(answer, dict) or not ("result" in answer or "error" in answer):
            node_went_away(self.url)
            raise _malformed(self.url)
        error = answer.get("error")
        if error is not None:
            raise _error_object(method, error, self.url)
        return answer.get("result")

    def batch(self, calls: Sequence[tuple[str, Sequence[Any]]]) -> list[Any]:
        """Several requests in one HTTP round trip. Each item of the answer is
        the result or an :class:`RpcError` instance (returned, not raised). A
        node that refuses the whole batch raises :class:`RpcError`."""
        if not calls:
            return []
        ids = [next(self._ids) for _ in calls]
        body = [
            {"jsonrpc": "2.0", "id": i, "method": method, "params": list(params)}
            for i, (method, params) in zip(ids, calls, strict=True)
        ]
        retry = all(method in _RETRY_METHODS for method, _ in calls)
        answers = self._post(json.dumps(body).encode(), retry)
        if isinstance(answers, dict) and answers.get("error") is not None:
            raise _error_object("batch", answers["error"], self.url)
        if not isinstance(answers, list):
            node_went_away(self.url)
            raise _malformed(self.url)
        by_id = {a.get("id"): a for a in answers if isinstance(a, dict)}
        if any(i not in by_id for i in ids):
            # geth answers an oversized batch with one error in place of them all.
            if len(answers) == 1 and _is_rpc_error(answers):
                raise _error_object("batch", answers[0]["error"], self.url)
            # A lost answer could be a transaction sent or not: never guess.
            node_went_away(self.url)
            raise _malformed(self.url)
        out: list[Any] = []
        for i, (method, _) in zip(ids, calls, strict=True):
            answer = by_id[i]
            error = answer.get("error")
            out.append(
                _error_object(method, error, self.url)
                if error is not None
                else answer.get("result")
            )
        return out

    def raise_revert(self, exc: RpcError, context: str, sender: str | None = None) -> NoReturn:
        """Turn a node error into the contract's decoded error if it is a revert."""
        data = exc.revert_data()
        if data is not None and self._revert_decoder is not None:
            raise self._revert_decoder(data, context, sender) from exc
        raise exc

    # -- typed helpers ------------------------------------------------------------

    def block_number(self) -> int:
        return int(self.request("eth_blockNumber", []), 16)

    def get_block(self, block: int | str | bytes = "latest", full: bool = False) -> dict[str, Any]:
        """A block as the node sends it: numbers and hashes are 0x-hex strings
        (``int(block["timestamp"], 16)``); ``extraData`` is whatever length the
        chain uses. ``block`` is a number, a tag (``"latest"``) or a 32-byte hash.
        Raises :class:`ChainRejected` if the block does not exist."""
        if isinstance(block, bytes):
            block = "0x" + block.hex()
        if isinstance(block, str) and len(block) == 66 and block.startswith("0x"):
            result = self.request("eth_getBlockByHash", [block, full])
        else:
            result = self.request("eth_getBlockByNumber", [_block_id(block), full])
        if not isinstance(result, dict):
            raise ChainRejected(f"Block {block} does not exist on {self.url}.", block=str(block))
        return cast(dict[str, Any], result)

    def get_code(self, address: str, block: int | str = "latest") -> bytes:
        return bytes.fromhex(self.request("eth_getCode", [address, _block_id(block)])[2:])

    def get_transaction_count(self, address: str, block: int | str = "pending") -> int:
        return int(self.request("eth_getTransactionCount", [address, _block_id(block)]), 16)

    def get_balance(self, address: str, block: int | str = "latest") -> int:
        return int(self.request("eth_getBalance", [address, _block_id(block)]), 16)

    def call(
        self,
        to: str,
        data: bytes,
        *,
        sender: str | None = None,
        block: int | str = "latest",
        gas: int | None = None,
        context: str = "call",
    ) -> bytes:
        """``eth_call``; a revert is raised as the contract's decoded error."""
        tx: dict[str, Any] = {"to": to, "data": "0x" + data.hex()}
        if sender:
            tx["from"] = sender
        if gas is not None:
            tx["gas"] = hex(gas)
        try:
            result = self.request("eth_call", [tx, _block_id(block)])
        except RpcError as exc:
            self.raise_revert(exc, context, sender)
        return bytes.fromhex(result[2:])

    def estimate_gas(self, tx: dict[str, Any], *, context: str = "transaction") -> int:
        try:
            return int(self.request("eth_estimateGas", [tx]), 16)
        except RpcError as exc:
            self.raise_revert(exc, context)

    def send_raw_transaction(self, raw: bytes) -> str:
        return str(self.request("eth_sendRawTransaction", ["0x" + raw.hex()]))

    def get_receipt(self, tx_hash: str) -> dict[str, Any] | None:
        result = self.request("eth_getTransactionReceipt", [tx_hash])
        return cast(dict[str, Any] | None, result)

    def get_logs(
        self, from_block: int, to_block: int, addresses: Sequence[str]
    ) -> list[dict[str, Any]]:
        """Raw logs (hex strings) of ``addresses`` in the inclusive block range."""
        params = {
            "fromBlock": hex(from_block),
            "toBlock": hex(to_block),
            "address": list(addresses),
        }
        return cast(list[dict[str, Any]], self.request("eth_getLogs", [params]))


def _block_id(block: int | str) -> str:
    return hex(block) if isinstance(block, int) else block


def connect(url: str, *, timeout: float = DEFAULT_TIMEOUT, **kwargs: Any) -> Connection:
    """Connect to the node at ``url`` (reads and caches its chain id)."""
    return Connection(url, timeout=timeout, **kwargs)
