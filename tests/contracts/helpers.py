"""Test-only helpers for the contract tests: deploy from the committed artifacts, send
transactions from impersonated accounts, decode custom errors, read events.

Deliberately small and independent of ``govshare.chain`` (which is the runtime's own
layer): these tests pin down the contracts themselves. A contract's functions read
like ``registry.functions.threshold().call()``; results come back as the ABI says:
one output as itself, several as a list, a struct as a tuple, an array as a list,
addresses checksummed.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from eth_abi import decode as abi_decode
from eth_abi import encode as abi_encode
from eth_utils import keccak, to_checksum_address

ROOT = Path(__file__).resolve().parents[2]
BUILD = ROOT / "contracts" / "build"
NAMES = ("ConsortiumRegistry", "RecordRegistry", "AccessLedger")
GAS = 5_000_000
GAS_PRICE = 2_000_000_000
DAY = 86_400


def artifact(name: str) -> dict[str, Any]:
    return json.loads((BUILD / f"{name}.json").read_text("utf-8"))


def _canonical_type(inp: dict[str, Any]) -> str:
    t = inp["type"]
    if t.startswith("tuple"):
        inner = ",".join(_canonical_type(c) for c in inp["components"])
        return f"({inner}){t[5:]}"
    return str(t)


def _error_table() -> dict[bytes, tuple[str, list[str], list[str]]]:
    table: dict[bytes, tuple[str, list[str], list[str]]] = {}
    for name in NAMES:
        for entry in artifact(name)["abi"]:
            if entry["type"] != "error":
                continue
            types = [_canonical_type(i) for i in entry["inputs"]]
            sig = f"{entry['name']}({','.join(types)})"
            table[keccak(text=sig)[:4]] = (
                entry["name"],
                types,
                [i["name"] for i in entry["inputs"]],
            )
    return table


ERRORS = _error_table()


def b32(text: str) -> bytes:
    """A left-aligned, zero-padded bytes32 label (department code, category)."""
    raw = text.encode("ascii")
    assert len(raw) <= 32
    return raw.ljust(32, b"\0")


def h32(label: str) -> bytes:
    """A distinct 32-byte value for ids and hashes."""
    return keccak(text=label)


def address_for(label: str) -> str:
    return to_checksum_address(keccak(text=f"govshare-test:{label}")[12:])


@dataclass(frozen=True)
class Revert(Exception):
    """A call reverted with a decoded custom error."""

    name: str
    args: tuple[Any, ...]

    def __str__(self) -> str:
        return f"{self.name}{self.args}"


def decode_revert(data: str | bytes) -> Revert:
    raw = bytes.fromhex(data[2:]) if isinstance(data, str) else data
    sel = raw[:4]
    if sel not in ERRORS:
        return Revert("<unknown>", (raw.hex(),))
    name, types, _ = ERRORS[sel]
    values = abi_decode(types, raw[4:])
    return Revert(name, tuple(_normalise(v) for v in values))


def _normalise(v: Any) -> Any:
    if isinstance(v, str) and v.startswith("0x") and len(v) == 42:
        return to_checksum_address(v)
    return v


def _types(inputs: list[dict[str, Any]]) -> list[str]:
    return [_canonical_type(i) for i in inputs]


def _normalise_as(abi_type: dict[str, Any], value: Any) -> Any:
    """A decoded value shaped as the ABI says (eth-abi gives tuples for arrays too)."""
    t = abi_type["type"]
    if t.endswith("]"):
        inner = {**abi_type, "type": t[: t.rindex("[")]}
        return [_normalise_as(inner, v) for v in value]
    if t == "tuple":
        return tuple(
            _normalise_as(c, v) for c, v in zip(abi_type["components"], value, strict=True)
        )
    if t == "address":
        return to_checksum_address(value)
    return value


class NodeError(Exception):
    """The node refused a request; ``data`` holds revert data, if any."""

    def __init__(self, method: str, error: dict[str, Any]) -> None:
        super().__init__(f"{method}: {error.get('message')}")
        self.error = error
        data = error.get("data")
        self.data = data.get("data") if isinstance(data, dict) else data


class Rpc:
    """JSON-RPC to the tests' anvil over one keep-alive httpx client."""

    def __init__(self, url: str) -> None:
        self.url = url
        self._http = httpx.Client(timeout=30)
        self.chain_id = int(self.request("eth_chainId"), 16)

    def request(self, method: str, *params: Any) -> Any:
        body = {"jsonrpc": "2.0", "id": 1, "method": method, "params": list(params)}
        answer = self._http.post(self.url, json=body).raise_for_status().json()
        if answer.get("error") is not None:
            raise NodeError(method, answer["error"])
        return answer["result"]

    @property
    def accounts(self) -> list[str]:
        return [to_checksum_address(a) for a in self.request("eth_accounts")]

    def block(self, number: int | str = "latest") -> dict[str, Any]:
        """A block's ``number`` and ``timestamp`` as ints."""
        tag = hex(number) if isinstance(number, int) else number
        raw = self.request("eth_getBlockByNumber", tag, False)
        return {**raw, "number": int(raw["number"], 16), "timestamp": int(raw["timestamp"], 16)}

    def receipt(self, tx_hash: str, timeout: float = 10.0) -> dict[str, Any]:
        """The receipt of ``tx_hash`` (anvil mines at once), numbers as ints and
        logs as :func:`_format_log` gives them."""
        deadline = time.monotonic() + timeout
        while (raw := self.request("eth_getTransactionReceipt", tx_hash)) is None:
            assert time.monotonic() < deadline, f"{tx_hash} not mined"
            time.sleep(0.01)
        created = raw.get("contractAddress")
        return {
            **raw,
            "status": int(raw["status"], 16),
            "blockNumber": int(raw["blockNumber"], 16),
            "gasUsed": int(raw["gasUsed"], 16),
            "contractAddress": to_checksum_address(created) if created else None,
            "logs": [_format_log(log) for log in raw["logs"]],
        }

    def close(self) -> None:
        self._http.close()


def _format_log(log: dict[str, Any]) -> dict[str, Any]:
    return {
        **log,
        "address": to_checksum_address(log["address"]),
        "topics": [bytes.fromhex(t[2:]) for t in log["topics"]],
        "data": bytes.fromhex(log["data"][2:]),
    }


class FunctionCall:
    """``contract.functions.name(*args)``: ``call()`` it, or send it with :meth:`Chain.send`."""

    def __init__(self, contract: Contract, entry: dict[str, Any], args: tuple[Any, ...]) -> None:
        self.contract = contract
        self.address = contract.address
        self.entry = entry
        types = _types(entry["inputs"])
        selector = keccak(text=f"{entry['name']}({','.join(types)})")[:4]
        self.data = "0x" + (selector + abi_encode(types, list(args))).hex()

    def call(self, tx: dict[str, Any] | None = None) -> Any:
        params = {"to": self.address, "data": self.data}
        if tx and tx.get("from"):
            params["from"] = tx["from"]
        out = bytes.fromhex(self.contract.rpc.request("eth_call", params, "latest")[2:])
        outputs = self.entry["outputs"]
        values = abi_decode(_types(outputs), out)
        shaped = [_normalise_as(o, v) for o, v in zip(outputs, values, strict=True)]
        return shaped[0] if len(shaped) == 1 else shaped


class EventType:
    """``contract.events.Name()``: decodes that event's logs."""

    def __init__(self, contract: Contract, entry: dict[str, Any]) -> None:
        self.contract = contract
        self.entry = entry
        self.topic = keccak(text=f"{entry['name']}({','.join(_types(entry['inputs']))})")

    def process_log(self, log: dict[str, Any]) -> dict[str, Any]:
        """``{"event": name, "args": {...}}``; ValueError if ``log`` is another event."""
        topics = log["topics"]
        if not topics or bytes(topics[0]) != self.topic:
            raise ValueError("not this event")
        indexed = [i for i in self.entry["inputs"] if i["indexed"]]
        plain = [i for i in self.entry["inputs"] if not i["indexed"]]
        args: dict[str, Any] = {}
        for inp, topic in zip(indexed, topics[1:], strict=True):
            args[inp["name"]] = _normalise_as(inp, abi_decode([_canonical_type(inp)], topic)[0])
        for inp, value in zip(plain, abi_decode(_types(plain), bytes(log["data"])), strict=True):
            args[inp["name"]] = _normalise_as(inp, value)
        return {"event": self.entry["name"], "args": args}

    def get_logs(self, from_block: int = 0) -> list[dict[str, Any]]:
        flt = {"address": self.contract.address, "fromBlock": hex(from_block), "toBlock": "latest"}
        raw = self.contract.rpc.request("eth_getLogs", {**flt, "topics": ["0x" + self.topic.hex()]})
        return [self.process_log(_format_log(log)) for log in raw]


class _Namespace:
    def __init__(self, contract: Contract, kind: str) -> None:
        self._contract = contract
        self._entries = {e["name"]: e for e in contract.abi if e["type"] == kind}

    def __getattr__(self, name: str) -> Any:
        try:
            entry = self._entries[name]
        except KeyError:
            raise AttributeError(name) from None
        if entry["type"] == "function":
            return lambda *args: FunctionCall(self._contract, entry, args)
        return lambda: EventType(self._contract, entry)


class Contract:
    """A deployed contract: ``functions.name(*args)``, ``events.Name()``."""

    def __init__(self, rpc: Rpc, abi: list[dict[str, Any]], address: str) -> None:
        self.rpc = rpc
        self.abi = abi
        self.address = to_checksum_address(address)
        self.functions = _Namespace(self, "function")
        self.events = _Namespace(self, "event")


def _revert_data(exc: NodeError) -> str | None:
    return exc.data if isinstance(exc.data, str) and exc.data != "0x" else None


@dataclass
class Chain:
    """One anvil with the three contracts deployed; accounts are impersonated."""

    rpc: Rpc
    registry: Contract
    records: Contract
    ledger: Contract
    funded: set[str] = field(default_factory=set)
    _funded_at: dict[str, set[str]] = field(default_factory=dict)

    # -- accounts and time

    def account(self, label: str) -> str:
        addr = address_for(label)
        if addr not in self.funded:
            self.rpc.request("anvil_setBalance", addr, hex(10**24))
            self.funded.add(addr)
        return addr

    def now(self) -> int:
        return int(self.rpc.block("latest")["timestamp"])

    def mine(self, timestamp: int | None = None) -> None:
        """Mine one block, at `timestamp` if given (later calls then run at that time)."""
        params = [hex(timestamp)] if timestamp is not None else []
        self.rpc.request("evm_mine", *params)

    def set_next_timestamp(self, timestamp: int) -> None:
        self.rpc.request("evm_setNextBlockTimestamp", hex(timestamp))

    def snapshot(self) -> str:
        snap = str(self.rpc.request("evm_snapshot"))
        self._funded_at[snap] = set(self.funded)
        return snap

    def revert_to(self, snap: str) -> None:
        assert self.rpc.request("evm_revert", snap) is True
        # Balances set after the snapshot are gone with it.
        self.funded = self._funded_at.pop(snap)

    # -- calls

    def send(self, fn: FunctionCall, sender: str, gas: int = GAS) -> dict[str, Any]:
        """Send `fn` from `sender`; return the receipt, or raise the decoded Revert."""
        tx = {
            "from": sender,
            "to": fn.address,
            "data": fn.data,
            "gas": hex(gas),
            "gasPrice": hex(GAS_PRICE),
        }
        try:
            # eth_call first: it yields the revert data a mined failure would hide.
            self.rpc.request("eth_call", tx, "pending")
        except NodeError as exc:
            payload = _revert_data(exc)
            if payload:
                raise decode_revert(payload) from None
            raise
        receipt = self.rpc.receipt(self.rpc.request("eth_sendTransaction", tx))
        assert receipt["status"] == 1, f"mined but failed: {receipt}"
        return receipt

    def reverts(self, fn: FunctionCall, sender: str) -> Revert:
        """Send `fn` from `sender`, expecting a revert; return it."""
        try:
            self.send(fn, sender)
        except Revert as r:
            return r
        raise AssertionError("expected a revert, the transaction succeeded")

    def call(self, fn: FunctionCall, sender: str | None = None) -> Any:
        try:
            return fn.call({"from": sender} if sender else {})
        except NodeError as exc:
            payload = _revert_data(exc)
            if payload:
                raise decode_revert(payload) from None
            raise

    def call_reverts(self, fn: FunctionCall) -> Revert:
        try:
            self.call(fn)
        except Revert as r:
            return r
        raise AssertionError("expected a revert, the call succeeded")


def events(receipt: Any, contract: Contract, name: str) -> list[dict[str, Any]]:
    """Decoded `name` events of `contract` in `receipt`, as plain dicts."""
    event = getattr(contract.events, name)()
    out = []
    for log in receipt["logs"]:
        if log["address"] != contract.address:
            continue
        try:
            decoded = event.process_log(log)
        except ValueError:
            continue
        out.append(dict(decoded["args"]))
    return out


def event_names(receipt: Any, *contracts: Contract) -> list[str]:
    """Names of every event in `receipt` emitted by `contracts`, in order."""
    topics: dict[bytes, str] = {}
    for c in contracts:
        for entry in c.abi:
            if entry["type"] == "event":
                sig = f"{entry['name']}({','.join(_canonical_type(i) for i in entry['inputs'])})"
                topics[keccak(text=sig)] = entry["name"]
    return [topics.get(bytes(log["topics"][0]), "?") for log in receipt["logs"]]


def one_event(receipt: Any, contract: Contract, name: str) -> dict[str, Any]:
    found = events(receipt, contract, name)
    assert len(found) == 1, f"expected one {name}, got {found}"
    return found[0]


def _deploy_data(name: str, args: tuple[Any, ...]) -> tuple[dict[str, Any], str]:
    art = artifact(name)
    ctor = next((e for e in art["abi"] if e["type"] == "constructor"), {"inputs": []})
    encoded = abi_encode(_types(ctor["inputs"]), list(args))
    return art, str(art["bytecode"]) + encoded.hex()


def deploy(rpc: Rpc, name: str, deployer: str, *args: Any) -> Contract:
    art, data = _deploy_data(name, args)
    tx_hash = rpc.request(
        "eth_sendTransaction", {"from": deployer, "data": data, "gas": hex(15_000_000)}
    )
    receipt = rpc.receipt(tx_hash)
    assert receipt["status"] == 1, f"deploying {name} failed"
    return Contract(rpc, art["abi"], receipt["contractAddress"])


def dept_init(code: str, *, admins: int = 1, prefix: str = "") -> tuple[Any, ...]:
    """The DepartmentInit tuple for `code` with deterministic test accounts."""
    p = prefix or code
    return (
        b32(code),
        f"Department {code}",
        address_for(f"{p}:broker"),
        [address_for(f"{p}:admin{i}") for i in range(admins)],
        b"\x01" * 32 + code.encode(),
        f"https://{code.lower()}.example/api",
    )


def connect(url: str) -> Rpc:
    rpc = Rpc(url)
    rpc.request("anvil_autoImpersonateAccount", True)
    return rpc


def deploy_reverts(rpc: Rpc, name: str, deployer: str, *args: Any) -> Revert:
    """Deploying `name` with `args` must revert; return the decoded error."""
    _, data = _deploy_data(name, args)
    try:
        rpc.request("eth_call", {"from": deployer, "data": data, "gas": hex(15_000_000)})
    except NodeError as exc:
        payload = _revert_data(exc)
        assert payload, f"revert without data: {exc!r}"
        return decode_revert(payload)
    raise AssertionError(f"deploying {name} succeeded")
