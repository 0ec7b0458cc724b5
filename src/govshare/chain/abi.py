"""The committed contract artifacts and fast ABI codecs built from them.

Only ``chain/`` reads ABIs. Codecs are built once per artifact and cached:
selector / topic tables, type strings and component names, so encoding a call
or decoding a log costs one ``eth_abi`` pass and no ABI lookups.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cache, lru_cache
from pathlib import Path
from typing import Any

from eth_abi import encode as abi_encode
from eth_abi.codec import ABICodec
from eth_abi.decoding import StringDecoder
from eth_abi.registry import BaseEquals, registry
from eth_utils import keccak, to_checksum_address

from govshare.errors import ConfigError

ARTIFACT_DIR = Path(__file__).resolve().parent / "artifacts"


class _LenientString(StringDecoder):
    """A Solidity ``string`` is any bytes (the EVM never checks UTF-8): invalid
    sequences a member wrote decode to U+FFFD instead of failing the whole call,
    and so does NUL, which no text column (PostgreSQL's) can store."""

    def __init__(self) -> None:
        # eth-abi's StringDecoder is unannotated, and mypy's untyped_calls_exclude
        # does not see through super().
        super().__init__(handle_string_errors="replace")  # type: ignore[no-untyped-call]

    def decode(self, stream: Any) -> str:
        text = str(super().decode(stream))  # type: ignore[no-untyped-call]
        return text.replace("\0", "\ufffd")


def _lenient_codec() -> ABICodec:
    reg = registry.copy()
    reg.unregister_decoder("string")
    reg.register_decoder(BaseEquals("string"), _LenientString, label="string")
    return ABICodec(reg)


#: Decodes what the chain returns; strings never fail (see :class:`_LenientString`).
abi_decode = _lenient_codec().decode
CONTRACT_NAMES: tuple[str, ...] = ("ConsortiumRegistry", "RecordRegistry", "AccessLedger")


def _hex_to_bytes(value: Any) -> bytes:
    if isinstance(value, dict):  # solc's {"object": "..."} form
        value = value.get("object", "")
    text = str(value or "")
    if text.startswith("0x"):
        text = text[2:]
    return bytes.fromhex(text)


def type_string(param: Mapping[str, Any]) -> str:
    """The canonical type of an ABI parameter, tuples expanded: ``(bytes32,string)[]``."""
    typ = str(param["type"])
    if typ.startswith("tuple"):
        inner = ",".join(type_string(c) for c in param["components"])
        return f"({inner}){typ[5:]}"
    return typ


def _name_value(value: Any, param: Mapping[str, Any]) -> Any:
    """Decoded ABI value → Python: tuples become dicts keyed by component name,
    addresses are checksummed."""
    typ = str(param["type"])
    if typ.endswith("]"):
        inner = dict(param)
        inner["type"] = typ[: typ.rindex("[")]
        return [_name_value(v, inner) for v in value]
    if typ == "tuple":
        return {
            str(c.get("name") or i): _name_value(v, c)
            for i, (c, v) in enumerate(zip(param["components"], value, strict=True))
        }
    if typ == "address":
        return checksum(value)
    return value


@lru_cache(maxsize=4096)
def checksum(address: str) -> str:
    """EIP-55 checksummed address (cached: a ledger names few accounts, often)."""
    return str(to_checksum_address(address))


def _topic_value(topic: bytes, typ: str) -> Any:
    """A static indexed argument straight from its 32-byte topic (what eth_abi
    would decode, without its per-call overhead); None for other types."""
    if typ == "bytes32":
        return bytes(topic)
    if typ == "address":
        return checksum("0x" + topic[12:].hex())
    if typ.startswith("uint") and typ[4:].isdigit():
        bits = int(typ[4:])
        value = int.from_bytes(topic, "big")
        return value if value < 1 << bits else None
    return None


def _to_abi_value(value: Any, param: Mapping[str, Any]) -> Any:
    """Python → eth_abi input: dicts for tuples are accepted and ordered by component."""
    typ = str(param["type"])
    if typ.endswith("]"):
        inner = dict(param)
        inner["type"] = typ[: typ.rindex("[")]
        return [_to_abi_value(v, inner) for v in value]
    if typ == "tuple":
        comps = param["components"]
        if isinstance(value, Mapping):
            value = [value[c["name"]] for c in comps]
        return tuple(_to_abi_value(v, c) for v, c in zip(value, comps, strict=True))
    return value


@dataclass(frozen=True)
class FunctionCodec:
    contract: str
    name: str
    signature: str
    selector: bytes
    inputs: tuple[Mapping[str, Any], ...]
    outputs: tuple[Mapping[str, Any], ...]
    input_types: tuple[str, ...]
    output_types: tuple[str, ...]
    mutability: str

    @property
    def is_view(self) -> bool:
        return self.mutability in ("view", "pure")

    def encode(self, args: Sequence[Any]) -> bytes:
        values = [_to_abi_value(v, p) for v, p in zip(args, self.inputs, strict=True)]
        return self.selector + abi_encode(self.input_types, values)

    def decode(self, data: bytes) -> list[Any]:
        """The outputs as a list of Python values (structs as dicts)."""
        raw = abi_decode(self.output_types, data)
        return [_name_value(v, p) for v, p in zip(raw, self.outputs, strict=True)]


@dataclass(frozen=True)
class EventCodec:
    contract: str
    name: str
    signature: str
    topic: bytes
    inputs: tuple[Mapping[str, Any], ...]
    indexed: tuple[Mapping[str, Any], ...] = field(default=())
    data: tuple[Mapping[str, Any], ...] = field(default=())

    def decode(self, topics: Sequence[bytes], data: bytes) -> dict[str, Any]:
        """Arguments by name. Indexed dynamic values (strings, bytes, arrays) are
        only their keccak hash on chain; they are returned as that hash."""
        out: dict[str, Any] = {}
        for param, topic in zip(self.indexed, topics[1:], strict=True):
            typ = type_string(param)
            if typ in ("string", "bytes") or typ.endswith("]") or typ.startswith("("):
                out[param["name"]] = bytes(topic)
                continue
            fast = _topic_value(bytes(topic), typ) if len(topic) == 32 else None
            if fast is None:
                fast = _name_value(abi_decode([typ], bytes(topic))[0], param)
            out[param["name"]] = fast
        values = abi_decode([type_string(p) for p in self.data], data)
        for param, value in zip(self.data, values, strict=True):
            out[param["name"]] = _name_value(value, param)
        return {p["name"]: out[p["name"]] for p in self.inputs}

    @property
    def indexed_names(self) -> tuple[str, ...]:
        return tuple(str(p["name"]) for p in self.indexed)


@dataclass(frozen=True)
class ErrorCodec:
    contract: str
    name: str
    signature: str
    selector: bytes
    inputs: tuple[Mapping[str, Any], ...]

    def decode(self, data: bytes) -> dict[str, Any]:
        values = abi_decode([type_string(p) for p in self.inputs], data)
        return {
            str(p.get("name") or f"arg{i}"): _name_value(v, p)
            for i, (p, v) in enumerate(zip(self.inputs, values, strict=True))
        }


# Identity-hashed (eq=False): the codec tables below are cached per artifact.
@dataclass(frozen=True, eq=False)
class Artifact:
    """One compiled contract as committed: ABI, creation and runtime bytecode."""

    name: str
    abi: tuple[Mapping[str, Any], ...]
    bytecode: bytes
    deployed_bytecode: bytes
    sha256: str

    @property
    def functions(self) -> dict[str, FunctionCodec]:
        return _functions(self)

    @property
    def events(self) -> dict[bytes, EventCodec]:
        return _events(self)

    @property
    def errors(self) -> dict[bytes, ErrorCodec]:
        return _errors(self)

    @property
    def constructor_inputs(self) -> tuple[Mapping[str, Any], ...]:
        for item in self.abi:
            if item.get("type") == "constructor":
                return tuple(item.get("inputs", ()))
        return ()

    def function(self, name: str) -> FunctionCodec:
        try:
            return self.functions[name]
        except KeyError:
            raise ConfigError(
                f"The {self.name} artifact has no function {name}; the installed govshare "
                "and its contract artifacts do not match."
            ) from None

    def event(self, name: str) -> EventCodec:
        for codec in self.events.values():
            if codec.name == name:
                return codec
        raise ConfigError(f"The {self.name} artifact has no event {name}.")

    def deploy_data(self, args: Sequence[Any]) -> bytes:
        inputs = self.constructor_inputs
        values = [_to_abi_value(v, p) for v, p in zip(args, inputs, strict=True)]
        return self.bytecode + abi_encode([type_string(p) for p in inputs], values)


def _signature(item: Mapping[str, Any]) -> str:
    return f"{item['name']}({','.join(type_string(p) for p in item.get('inputs', ()))})"


@cache
def _functions(art: Artifact) -> dict[str, FunctionCodec]:
    out: dict[str, FunctionCodec] = {}
    for item in art.abi:
        if item.get("type") != "function":
            continue
        sig = _signature(item)
        codec = FunctionCodec(
            contract=art.name,
            name=str(item["name"]),
            signature=sig,
            selector=keccak(text=sig)[:4],
            inputs=tuple(item.get("inputs", ())),
            outputs=tuple(item.get("outputs", ())),
            input_types=tuple(type_string(p) for p in item.get("inputs", ())),
            output_types=tuple(type_string(p) for p in item.get("outputs", ())),
            mutability=str(item.get("stateMutability", "nonpayable")),
        )
        # Overloads are reachable by full signature; the plain name is the first one.
        out.setdefault(codec.name, codec)
        out[sig] = codec
    return out


@cache
def _events(art: Artifact) -> dict[bytes, EventCodec]:
    out: dict[bytes, EventCodec] = {}
    for item in art.abi:
        if item.get("type") != "event" or item.get("anonymous"):
            continue
        sig = _signature(item)
        inputs = tuple(item.get("inputs", ()))
        codec = EventCodec(
            contract=art.name,
            name=str(item["name"]),
            signature=sig,
            topic=keccak(text=sig),
            inputs=inputs,
            indexed=tuple(p for p in inputs if p.get("indexed")),
            data=tuple(p for p in inputs if not p.get("indexed")),
        )
        out[codec.topic] = codec
    return out


@cache
def _errors(art: Artifact) -> dict[bytes, ErrorCodec]:
    out: dict[bytes, ErrorCodec] = {}
    for item in art.abi:
        if item.get("type") != "error":
            continue
        sig = _signature(item)
        codec = ErrorCodec(
            contract=art.name,
            name=str(item["name"]),
            signature=sig,
            selector=keccak(text=sig)[:4],
            inputs=tuple(item.get("inputs", ())),
        )
        out[codec.selector] = codec
    return out


def artifact_from_json(name: str, raw: bytes) -> Artifact:
    data = json.loads(raw)
    return Artifact(
        name=name,
        abi=tuple(data["abi"]),
        bytecode=_hex_to_bytes(data.get("bytecode")),
        deployed_bytecode=_hex_to_bytes(data.get("deployedBytecode")),
        sha256=hashlib.sha256(raw).hexdigest(),
    )


@cache
def load_artifact(name: str) -> Artifact:
    """The packaged artifact ``chain/artifacts/<name>.json``."""
    path = ARTIFACT_DIR / f"{name}.json"
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ConfigError(
            f"The contract artifact {name}.json is missing from the govshare package; "
            "reinstall govshare (or run `make compile` in a source checkout)."
        ) from exc
    return artifact_from_json(name, raw)


def all_artifacts() -> dict[str, Artifact]:
    return {name: load_artifact(name) for name in CONTRACT_NAMES}


# Solidity's built-in revert payloads.
ERROR_STRING = ErrorCodec(
    contract="",
    name="Error",
    signature="Error(string)",
    selector=keccak(text="Error(string)")[:4],
    inputs=({"name": "message", "type": "string"},),
)
PANIC = ErrorCodec(
    contract="",
    name="Panic",
    signature="Panic(uint256)",
    selector=keccak(text="Panic(uint256)")[:4],
    inputs=({"name": "code", "type": "uint256"},),
)


def error_table(artifacts: Iterable[Artifact] | None = None) -> dict[bytes, ErrorCodec]:
    """Selector → error codec across all govshare contracts, plus Error/Panic."""
    table: dict[bytes, ErrorCodec] = {ERROR_STRING.selector: ERROR_STRING, PANIC.selector: PANIC}
    for art in artifacts if artifacts is not None else all_artifacts().values():
        for sel, codec in art.errors.items():
            table.setdefault(sel, codec)
    return table


def event_table(artifacts: Iterable[Artifact] | None = None) -> dict[bytes, list[EventCodec]]:
    """Topic0 → event codecs (several contracts may declare the same event)."""
    table: dict[bytes, list[EventCodec]] = {}
    for art in artifacts if artifacts is not None else all_artifacts().values():
        for topic, codec in art.events.items():
            table.setdefault(topic, []).append(codec)
    return table
