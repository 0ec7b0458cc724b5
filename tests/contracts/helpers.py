"""Test-only helpers for the contract tests: deploy from the committed artifacts, send
transactions from impersonated accounts, decode custom errors, read events.

Deliberately small and independent of ``govshare.chain`` (which is the runtime's own
layer): these tests pin down the contracts themselves.
"""

from __future__ import annotations

import json
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from eth_abi import decode as abi_decode
from eth_utils import keccak, to_checksum_address

with warnings.catch_warnings():
    # web3 7 imports websockets' legacy client, which warns on import; we use HTTP only.
    warnings.filterwarnings("ignore", "websockets.legacy is deprecated", DeprecationWarning)
    from web3 import Web3
    from web3.contract import Contract
    from web3.exceptions import ContractCustomError, ContractLogicError, ContractPanicError

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


def _revert_data(exc: Exception) -> str | None:
    data = getattr(exc, "data", None)
    if isinstance(data, dict):
        data = data.get("data")
    return data if isinstance(data, str) else None


@dataclass
class Chain:
    """One anvil with the three contracts deployed; accounts are impersonated."""

    w3: Web3
    registry: Contract
    records: Contract
    ledger: Contract
    funded: set[str] = field(default_factory=set)
    _funded_at: dict[str, set[str]] = field(default_factory=dict)

    # -- accounts and time

    def account(self, label: str) -> str:
        addr = address_for(label)
        if addr not in self.funded:
            self.w3.provider.make_request("anvil_setBalance", [addr, hex(10**24)])
            self.funded.add(addr)
        return addr

    def now(self) -> int:
        return int(self.w3.eth.get_block("latest")["timestamp"])

    def mine(self, timestamp: int | None = None) -> None:
        """Mine one block, at `timestamp` if given (later calls then run at that time)."""
        params = [hex(timestamp)] if timestamp is not None else []
        self.w3.provider.make_request("evm_mine", params)

    def set_next_timestamp(self, timestamp: int) -> None:
        self.w3.provider.make_request("evm_setNextBlockTimestamp", [hex(timestamp)])

    def snapshot(self) -> str:
        snap = str(self.w3.provider.make_request("evm_snapshot", [])["result"])
        self._funded_at[snap] = set(self.funded)
        return snap

    def revert_to(self, snap: str) -> None:
        assert self.w3.provider.make_request("evm_revert", [snap])["result"] is True
        # Balances set after the snapshot are gone with it.
        self.funded = self._funded_at.pop(snap)

    # -- calls

    def send(self, fn: Any, sender: str, gas: int = GAS) -> Any:
        """Send `fn` from `sender`; return the receipt, or raise the decoded Revert."""
        try:
            data = fn._encode_transaction_data()
        except AttributeError:  # pragma: no cover - web3 internals moved
            data = fn.build_transaction({"from": sender, "gas": GAS, "gasPrice": GAS_PRICE})["data"]
        tx = {
            "from": sender,
            "to": fn.address,
            "data": data,
            "gas": gas,
            "gasPrice": GAS_PRICE,
        }
        try:
            # eth_call first: it yields the revert data a mined failure would hide.
            self.w3.eth.call(tx, "pending")
        except (ContractCustomError, ContractLogicError, ContractPanicError) as exc:
            payload = _revert_data(exc)
            if payload:
                raise decode_revert(payload) from None
            raise
        tx_hash = self.w3.eth.send_transaction(tx)
        receipt = self.w3.eth.wait_for_transaction_receipt(tx_hash, timeout=10, poll_latency=0.01)
        assert receipt["status"] == 1, f"mined but failed: {receipt}"
        return receipt

    def reverts(self, fn: Any, sender: str) -> Revert:
        """Send `fn` from `sender`, expecting a revert; return it."""
        try:
            self.send(fn, sender)
        except Revert as r:
            return r
        raise AssertionError("expected a revert, the transaction succeeded")

    def call(self, fn: Any, sender: str | None = None) -> Any:
        try:
            return fn.call({"from": sender} if sender else {})
        except (ContractCustomError, ContractLogicError) as exc:
            payload = _revert_data(exc)
            if payload:
                raise decode_revert(payload) from None
            raise

    def call_reverts(self, fn: Any) -> Revert:
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
        except Exception:
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


def deploy(w3: Web3, name: str, deployer: str, *args: Any) -> Contract:
    art = artifact(name)
    factory = w3.eth.contract(abi=art["abi"], bytecode=art["bytecode"])
    tx_hash = factory.constructor(*args).transact({"from": deployer, "gas": 15_000_000})
    receipt = w3.eth.wait_for_transaction_receipt(tx_hash, timeout=10, poll_latency=0.01)
    assert receipt["status"] == 1, f"deploying {name} failed"
    return w3.eth.contract(address=receipt["contractAddress"], abi=art["abi"])


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


def connect(url: str) -> Web3:
    w3 = Web3(Web3.HTTPProvider(url, request_kwargs={"timeout": 30}))
    w3.provider.make_request("anvil_autoImpersonateAccount", [True])
    return w3


def deploy_reverts(w3: Web3, name: str, deployer: str, *args: Any) -> Revert:
    """Deploying `name` with `args` must revert; return the decoded error."""
    art = artifact(name)
    factory = w3.eth.contract(abi=art["abi"], bytecode=art["bytecode"])
    data = factory.constructor(*args).data_in_transaction
    try:
        w3.eth.call({"from": deployer, "data": data, "gas": 15_000_000})
    except (ContractCustomError, ContractLogicError) as exc:
        payload = _revert_data(exc)
        assert payload, f"revert without data: {exc!r}"
        return decode_revert(payload)
    raise AssertionError(f"deploying {name} succeeded")
