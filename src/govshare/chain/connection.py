"""One JSON-RPC connection to the chain, with web3.py underneath.

What this adds to a plain ``Web3(HTTPProvider(url))``:

* The chain id is read once, when connecting, and cached. web3.py's default
  ``validation`` middleware asks the node for it before every ``eth_call`` /
  ``eth_estimateGas`` (measured 5 ms instead of 1 ms per call on anvil); we
  remove it. We sign every transaction ourselves with the cached chain id, so
  the check it made is already done.
* Besu QBFT blocks carry ~100 bytes of ``extraData``. ``ExtraDataToPOAMiddleware``
  is *always* injected: it only renames a field of block results, costs nothing
  on anvil, and saves a detection round trip (and a surprise) on Besu.
* Every request has a timeout; transport failures become :class:`ChainUnavailable`
  with a sentence saying what to do, node errors become :class:`RpcError`, and a
  revert becomes the contract's decoded custom error (through ``revert_decoder``).
  Nothing from web3 or requests leaks past this module.

The hot paths (``call``, ``estimate_gas``, ``send_raw_transaction``) go straight
to ``provider.make_request``: middleware formatting is for ``w3.eth`` users and
costs more than the node takes to answer an ``eth_call`` on anvil.
"""

from __future__ import annotations

import json
import threading
import warnings
from collections.abc import Callable, Sequence
from typing import Any, NoReturn, cast

import requests

with warnings.catch_warnings():
    # web3 7 imports websockets' legacy client, which warns on import; govshare
    # talks HTTP only. Scoped so `filterwarnings = error` still guards the rest.
    warnings.filterwarnings("ignore", "websockets.legacy is deprecated", DeprecationWarning)
    from web3 import HTTPProvider, Web3
    from web3.exceptions import BlockNotFound, Web3Exception
    from web3.middleware import ExtraDataToPOAMiddleware
    from web3.providers import BaseProvider
    from web3.providers.rpc.utils import ExceptionRetryConfiguration
    from web3.types import RPCEndpoint

from govshare.errors import ChainRejected, ChainUnavailable, GovShareError

DEFAULT_TIMEOUT = 10.0

# JSON-RPC methods whose failure on a dropped connection is safe to retry once
# (reads; a re-sent raw transaction is answered "already known" at worst).
_RETRY_METHODS = [
    "eth_chainId",
    "eth_blockNumber",
    "eth_getBlockByNumber",
    "eth_getBlockByHash",
    "eth_getCode",
    "eth_getTransactionCount",
    "eth_getTransactionReceipt",
    "eth_getLogs",
    "eth_call",
    "eth_estimateGas",
    "eth_feeHistory",
    "eth_gasPrice",
    "eth_maxPriorityFeePerGas",
]

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
        self.rpc_code = int(error.get("code", 0) or 0)
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


def _unavailable(url: str, exc: BaseException, timeout: float) -> ChainUnavailable:
    if isinstance(exc, requests.Timeout):
        return ChainUnavailable(
            f"The chain node at {url} did not answer within {timeout:g}s. It may be "
            "overloaded or stuck; try again shortly, or check the node's log.",
            url=url,
        )
    if isinstance(exc, requests.HTTPError) and exc.response is not None:
        return ChainUnavailable(
            f"The chain node at {url} answered HTTP {exc.response.status_code}. Check that "
            "the URL points to the node's JSON-RPC endpoint and that the node is healthy.",
            url=url,
        )
    return ChainUnavailable(
        f"The chain node at {url} is not reachable. Check that it is running (for the "
        "local dev chain: `govshare dev chain start`) and that --rpc points to it.",
        url=url,
    )


_TRANSPORT_ERRORS: tuple[type[BaseException], ...] = (
    requests.RequestException,
    OSError,
    json.JSONDecodeError,
)


class Connection:
    """A connection to one chain node by URL (HTTP)."""

    def __init__(
        self,
        url: str,
        *,
        timeout: float = DEFAULT_TIMEOUT,
        provider: BaseProvider | None = None,
        revert_decoder: RevertDecoder | None = None,
        expected_chain_id: int | None = None,
    ) -> None:
        self.url = url
        self.timeout = timeout
        if provider is None:
            provider = HTTPProvider(
                url,
                request_kwargs={"timeout": timeout},
                # One quick retry of reads on a dropped keep-alive connection; a
                # node that is really down is reported at once, not after ~2 s.
                exception_retry_configuration=ExceptionRetryConfiguration(
                    errors=(requests.ConnectionError,),
                    retries=2,
                    backoff_factor=0.05,
                    method_allowlist=_RETRY_METHODS,
                ),
            )
        self.provider = provider
        self.w3 = Web3(provider)
        onion = self.w3.middleware_onion
        # Chain-id validation per call (replaced by the cached id), ENS lookups,
        # gas price / gas estimate strategies: the sender does all of that itself.
        for name in ("validation", "ens_name_to_address", "gas_price_strategy", "gas_estimate"):
            if name in {n for _, n in onion.middleware}:
                onion.remove(name)
        onion.inject(ExtraDataToPOAMiddleware, name="extradata_to_poa", layer=0)
        self._revert_decoder = revert_decoder
        self.chain_id: int = int(self.request("eth_chainId", []), 16)
        try:
            genesis = self.request("eth_getBlockByNumber", ["0x0", False])
        except RpcError:  # a pruned node may not serve block 0
            genesis = None
        # Identifies this chain beyond its id: a dev chain reset at the same URL
        # has another genesis block (nonce allocators are keyed by it).
        self.genesis_hash: str = str(genesis.get("hash", "")) if isinstance(genesis, dict) else ""
        if expected_chain_id is not None and expected_chain_id != self.chain_id:
            raise ChainRejected(
                f"The chain node at {url} is on chain {self.chain_id}, but the deployment "
                f"was made on chain {expected_chain_id}. Point --rpc to the right network.",
                url=url,
                chain_id=self.chain_id,
            )

    def __repr__(self) -> str:
        return f"Connection({self.url!r}, chain_id={self.chain_id})"

    def set_revert_decoder(self, decoder: RevertDecoder | None) -> None:
        self._revert_decoder = decoder

    # -- raw requests -----------------------------------------------------------

    def request(self, method: str, params: Sequence[Any]) -> Any:
        """One JSON-RPC request, bypassing middleware. Returns ``result``; raises
        :class:`ChainUnavailable` or :class:`RpcError`."""
        try:
            response = self.provider.make_request(RPCEndpoint(method), list(params))
        except _TRANSPORT_ERRORS as exc:
            node_went_away(self.url)
            raise _unavailable(self.url, exc, self.timeout) from exc
        except GovShareError:
            raise
        except Web3Exception as exc:  # web3 wraps some transport failures in its own types
            raise _unavailable(self.url, exc, self.timeout) from exc
        error = response.get("error")
        if error is not None:
            raise RpcError(method, cast(dict[str, Any], error), self.url)
        return response.get("result")

    def batch(self, calls: Sequence[tuple[str, Sequence[Any]]]) -> list[Any]:
        """Several requests in one HTTP round trip. Each item of the answer is
        the result or an :class:`RpcError` instance (returned, not raised)."""
        if not calls:
            return []
        provider = cast(Any, self.provider)
        try:
            responses = provider.make_batch_request([(RPCEndpoint(m), list(p)) for m, p in calls])
        except _TRANSPORT_ERRORS as exc:
            node_went_away(self.url)
            raise _unavailable(self.url, exc, self.timeout) from exc
        except Web3Exception as exc:
            raise _unavailable(self.url, exc, self.timeout) from exc
        if isinstance(responses, dict):  # the node refused the whole batch
            raise RpcError("batch", cast(dict[str, Any], responses.get("error") or {}), self.url)
        out: list[Any] = []
        for (method, _), resp in zip(calls, responses, strict=True):
            err = resp.get("error")
            out.append(
                RpcError(method, cast(dict[str, Any], err), self.url) if err else resp.get("result")
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

    def get_block(self, block: int | str = "latest", full: bool = False) -> dict[str, Any]:
        """A block through web3's formatters (``proofOfAuthorityData`` holds QBFT's
        extraData). Raises :class:`ChainRejected` if the block does not exist."""
        try:
            result = self.w3.eth.get_block(cast(Any, block), full)
        except GovShareError:
            raise
        except _TRANSPORT_ERRORS as exc:
            node_went_away(self.url)
            raise _unavailable(self.url, exc, self.timeout) from exc
        except BlockNotFound as exc:
            raise ChainRejected(f"Block {block} does not exist on {self.url}.") from exc
        except Web3Exception as exc:
            raise _unavailable(self.url, exc, self.timeout) from exc
        return dict(result)

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
