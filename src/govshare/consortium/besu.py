"""Hyperledger Besu QBFT network material: node keys, genesis, enodes, node config.

Everything here is pure: it computes bytes and text, it never talks to a node.
The formats follow Besu's own code and documentation:

- A node key file holds one line, the hex private key (Besu's ``KeyPairUtil``
  writes ``0x`` + 64 hex digits and no newline; it reads exactly one line).
- A node's address is the last 20 bytes of ``keccak256(uncompressed public key
  without its 0x04 prefix)``; its enode node id is that 64-byte public key.
- The genesis ``extraData`` is what ``QbftExtraDataCodec`` encodes:
  ``RLP([32-byte vanity, [validator addresses], vote or [], round (int scalar), [seals]])``;
  the genesis block has no vote (``[]``), round 0 and no seals.
- Validators are listed in ascending address order: Besu's block validation
  rejects headers whose validator list is not sorted ascending, and its docs ask
  for the genesis list "in ascending order".
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import coincurve
import rlp
from eth_utils import keccak, to_checksum_address

from govshare.errors import InputError

# "ctical byzantine fault tolerance": the Istanbul/QBFT block identifier (Besu docs).
QBFT_MIX_HASH = "0x63746963616c2062797a616e74696e65206661756c7420746f6c6572616e6365"
EXTRA_VANITY_LENGTH = 32
# Besu's Vote.ADD_BYTE_VALUE; a drop vote is written as an empty byte string.
VOTE_ADD_BYTE = b"\xff"
# Free-gas network values from Besu's "Configure free gas networks" guide.
FREE_GAS_BLOCK_GAS_LIMIT = "0x1fffffffffffff"
MAX_CONTRACT_SIZE = 2147483647
DEFAULT_EPOCH_LENGTH = 30000
DEFAULT_P2P_PORT = 30303
DEFAULT_RPC_PORT = 8545
# secp256k1 group order: a private key must be in [1, n-1].
_SECP256K1_N = int("FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141", 16)


def _unhex(text: str, what: str) -> bytes:
    s = text.strip()
    if s[:2].lower() == "0x":
        s = s[2:]
    try:
        return bytes.fromhex(s)
    except ValueError as exc:
        raise InputError(f"{what} is not valid hex.") from exc


def parse_address(text: str) -> bytes:
    """A 20-byte account address from ``0x``-prefixed (or bare) hex."""
    raw = _unhex(text, "The address")
    if len(raw) != 20:
        raise InputError(f"An address is 20 bytes (40 hex digits); got {len(raw)} bytes.")
    return raw


def address_hex(address: bytes) -> str:
    """Lower-case ``0x`` hex, the form Besu prints and its allowlists store."""
    return "0x" + address.hex()


def address_from_public_key(public_key: bytes) -> bytes:
    """The Ethereum address of a 64-byte uncompressed secp256k1 public key."""
    if len(public_key) != 64:
        raise InputError("A node public key is 64 bytes (uncompressed, without the 0x04 prefix).")
    return keccak(public_key)[-20:]


@dataclass(frozen=True)
class NodeKey:
    """A Besu node key pair (secp256k1). The private key never appears in ``repr``."""

    private_key: bytes = field(repr=False)

    def __post_init__(self) -> None:
        if len(self.private_key) != 32:
            raise InputError("A node private key is 32 bytes (64 hex digits).")
        k = int.from_bytes(self.private_key, "big")
        if not 0 < k < _SECP256K1_N:
            raise InputError("The node private key is outside the secp256k1 key range.")

    @classmethod
    def generate(cls) -> NodeKey:
        while True:
            candidate = secrets.token_bytes(32)
            if 0 < int.from_bytes(candidate, "big") < _SECP256K1_N:
                return cls(candidate)

    @classmethod
    def from_hex(cls, text: str) -> NodeKey:
        return cls(_unhex(text, "The node private key"))

    @classmethod
    def parse_key_file(cls, text: str) -> NodeKey:
        """Parse Besu's key file: exactly one non-empty line of hex (``0x`` optional)."""
        lines = [ln for ln in text.splitlines() if ln.strip()]
        if len(lines) != 1:
            raise InputError("A Besu key file holds exactly one line: the hex private key.")
        return cls.from_hex(lines[0])

    @classmethod
    def load(cls, path: Path) -> NodeKey:
        try:
            text = path.read_text(encoding="ascii")
        except (OSError, UnicodeDecodeError) as exc:
            raise InputError(f"Cannot read the node key file {path}.", path=str(path)) from exc
        return cls.parse_key_file(text)

    @property
    def public_key(self) -> bytes:
        """64 bytes: X || Y, Besu's node public key and the enode node id."""
        return coincurve.PrivateKey(self.private_key).public_key.format(compressed=False)[1:]

    @property
    def address(self) -> bytes:
        return address_from_public_key(self.public_key)

    @property
    def address_hex(self) -> str:
        return address_hex(self.address)

    @property
    def node_id(self) -> str:
        return self.public_key.hex()

    def enode(self, host: str, port: int = DEFAULT_P2P_PORT) -> str:
        return enode_url(self.public_key, host, port)

    def key_file_text(self) -> str:
        """The private key file exactly as Besu writes it: ``0x`` + 64 hex, no newline."""
        return "0x" + self.private_key.hex()

    def public_key_file_text(self) -> str:
        """``key.pub`` as ``besu public-key export`` writes it: ``0x`` + 128 hex."""
        return "0x" + self.public_key.hex()


def enode_url(public_key: bytes, host: str, port: int = DEFAULT_P2P_PORT) -> str:
    if len(public_key) != 64:
        raise InputError("An enode node id is a 64-byte public key.")
    if not host or any(c in host for c in "@/ "):
        raise InputError(f"Invalid enode host {host!r}.")
    if not 0 < port < 65536:
        raise InputError(f"Invalid enode port {port}.")
    return f"enode://{public_key.hex()}@{host}:{port}"


# --- QBFT extraData -----------------------------------------------------------------


@dataclass(frozen=True)
class Vote:
    """A validator vote carried in a block header: add (``True``) or drop a validator."""

    recipient: bytes
    add: bool


@dataclass(frozen=True)
class QbftExtraData:
    vanity: bytes
    validators: tuple[bytes, ...]
    vote: Vote | None
    round_number: int
    seals: tuple[bytes, ...]


def encode_qbft_extra_data(
    validators: Sequence[bytes],
    *,
    vanity: bytes = bytes(EXTRA_VANITY_LENGTH),
    vote: Vote | None = None,
    round_number: int = 0,
    seals: Sequence[bytes] = (),
) -> bytes:
    """RLP-encode QBFT extra data exactly as Besu's ``QbftExtraDataCodec.encode`` does.

    The validator order is kept as given (Besu's codec does not sort);
    :func:`genesis_extra_data` sorts for the genesis block.
    """
    if len(vanity) != EXTRA_VANITY_LENGTH:
        raise InputError(f"QBFT vanity data is {EXTRA_VANITY_LENGTH} bytes.")
    for v in validators:
        if len(v) != 20:
            raise InputError("Each QBFT validator is a 20-byte address.")
    if round_number < 0:
        raise InputError("The QBFT round is a non-negative integer.")
    vote_item: list[bytes] = []
    if vote is not None:
        if len(vote.recipient) != 20:
            raise InputError("A QBFT vote recipient is a 20-byte address.")
        vote_item = [vote.recipient, VOTE_ADD_BYTE if vote.add else b""]
    for s in seals:
        if len(s) != 65:
            raise InputError("A QBFT commit seal is a 65-byte signature (r, s, v).")
    # rlp encodes the int as a minimal big-endian scalar: Besu's writeIntScalar.
    return bytes(rlp.encode([vanity, list(validators), vote_item, round_number, list(seals)]))


def decode_qbft_extra_data(data: bytes) -> QbftExtraData:
    """Decode QBFT extra data (the inverse of :func:`encode_qbft_extra_data`)."""
    try:
        items = rlp.decode(data)
    except rlp.exceptions.DecodingError as exc:
        raise InputError("The extraData is not valid RLP.") from exc
    if not isinstance(items, list) or len(items) != 5:
        raise InputError("QBFT extraData is an RLP list of five items.")
    vanity, validators, vote_item, round_raw, seals = items
    if not isinstance(vanity, bytes) or not isinstance(validators, list):
        raise InputError("QBFT extraData: malformed vanity or validator list.")
    if not isinstance(round_raw, bytes) or (round_raw[:1] == b"\x00"):
        # Besu reads the round with readIntScalar, which rejects leading zero bytes.
        raise InputError("QBFT extraData: the round is not a minimal integer scalar.")
    vote: Vote | None = None
    if not isinstance(vote_item, list):
        raise InputError("QBFT extraData: the vote is not a list.")
    if vote_item:
        if len(vote_item) != 2 or vote_item[1] not in (VOTE_ADD_BYTE, b""):
            raise InputError("QBFT extraData: malformed vote.")
        vote = Vote(recipient=vote_item[0], add=vote_item[1] == VOTE_ADD_BYTE)
    if not isinstance(seals, list):
        raise InputError("QBFT extraData: the seals are not a list.")
    return QbftExtraData(
        vanity=vanity,
        validators=tuple(validators),
        vote=vote,
        round_number=int.from_bytes(round_raw, "big"),
        seals=tuple(seals),
    )


def sort_validators(addresses: Iterable[bytes]) -> list[bytes]:
    """Ascending, duplicate-free: the order Besu requires of the validator list."""
    out = sorted(set(addresses))
    if not out:
        raise InputError("A QBFT network needs at least one validator.")
    return out


def genesis_extra_data(validators: Iterable[bytes]) -> str:
    """The genesis ``extraData`` hex: sorted validators, no vote, round 0, no seals."""
    return "0x" + encode_qbft_extra_data(sort_validators(validators)).hex()


# --- genesis.json -------------------------------------------------------------------


@dataclass(frozen=True)
class GenesisOptions:
    chain_id: int
    block_period_seconds: int = 2
    request_timeout_seconds: int | None = None  # default: twice the block period
    epoch_length: int = DEFAULT_EPOCH_LENGTH
    gas_limit: str = FREE_GAS_BLOCK_GAS_LIMIT
    timestamp: int = 0

    def __post_init__(self) -> None:
        if not 0 < self.chain_id < 2**63:
            raise InputError("The chain id is a positive integer.")
        if self.block_period_seconds < 1:
            raise InputError("The QBFT block period is at least one second.")
        if self.request_timeout_seconds is not None and self.request_timeout_seconds < 1:
            raise InputError("The QBFT request timeout is at least one second.")
        if self.epoch_length < 1:
            raise InputError("The QBFT epoch length is at least one block.")


def build_genesis(
    validators: Iterable[bytes],
    options: GenesisOptions,
    alloc: Mapping[bytes, int] | None = None,
) -> dict[str, Any]:
    """A Besu QBFT genesis (block-header validator selection) for a free-gas network.

    Milestones: ``berlinBlock``/``londonBlock`` at 0 (Besu's QBFT tutorial and free-gas
    guide), ``shanghaiTime``/``cancunTime`` at 0 so contracts compiled for ``cancun``
    run from the first block; ``zeroBaseFee`` keeps the EIP-1559 base fee at 0.
    """
    request_timeout = options.request_timeout_seconds or 2 * options.block_period_seconds
    accounts = {
        address_hex(a)[2:]: {"balance": hex(balance)}
        for a, balance in sorted((alloc or {}).items())
    }
    return {
        "config": {
            "chainId": options.chain_id,
            "berlinBlock": 0,
            "londonBlock": 0,
            "shanghaiTime": 0,
            "cancunTime": 0,
            "zeroBaseFee": True,
            "contractSizeLimit": MAX_CONTRACT_SIZE,
            "qbft": {
                "blockperiodseconds": options.block_period_seconds,
                "epochlength": options.epoch_length,
                "requesttimeoutseconds": request_timeout,
            },
        },
        "nonce": "0x0",
        "timestamp": hex(options.timestamp),
        "extraData": genesis_extra_data(validators),
        "gasLimit": options.gas_limit,
        "difficulty": "0x1",
        "mixHash": QBFT_MIX_HASH,
        "coinbase": "0x0000000000000000000000000000000000000000",
        "alloc": accounts,
        "number": "0x0",
        "gasUsed": "0x0",
        "parentHash": "0x" + "00" * 32,
    }


def render_json(data: Any) -> str:
    return json.dumps(data, indent=2) + "\n"


# --- per-node Besu config.toml ------------------------------------------------------

# Where the compose stack mounts things inside the Besu container.
CONTAINER_DATA_PATH = "/opt/besu/data"
CONTAINER_GENESIS = "/config/genesis.json"
CONTAINER_PERMISSIONS = "/config/permissions/permissions_config.toml"
CONTAINER_NODE_KEY = "/secrets/key"
RPC_APIS = ("ETH", "NET", "WEB3", "QBFT", "PERM", "TXPOOL")


def _toml_str(s: str) -> str:
    return json.dumps(s)  # a JSON string literal is a valid TOML basic string


def _toml_list(items: Iterable[str]) -> str:
    return "[" + ",".join(_toml_str(i) for i in items) + "]"


def node_config_toml(
    *,
    bootnodes: Sequence[str],
    p2p_port: int = DEFAULT_P2P_PORT,
    rpc_port: int = DEFAULT_RPC_PORT,
    rpc_host_allowlist: Sequence[str] = ("*",),
) -> str:
    """A Besu ``--config-file`` for one validator (option names as on the CLI, no ``--``).

    Free gas (``min-gas-price=0`` on every node), local node and account allowlists
    read from the shared ``permissions_config.toml`` (reloaded with the ``PERM`` API),
    DNS names in enode URLs (``Xdns-enabled``: container names, re-resolved on restart).
    """
    lines = [
        "# Generated by `govshare consortium genesis`. Besu option names, without the dashes.",
        f"data-path={_toml_str(CONTAINER_DATA_PATH)}",
        f"genesis-file={_toml_str(CONTAINER_GENESIS)}",
        f"node-private-key-file={_toml_str(CONTAINER_NODE_KEY)}",
        'profile="ENTERPRISE"',
        'sync-mode="FULL"',
        "min-gas-price=0",
        'p2p-interface="0.0.0.0"',
        f"p2p-port={p2p_port}",
        f"bootnodes={_toml_list(bootnodes)}",
        "Xdns-enabled=true",
        "Xdns-update-enabled=true",
        "rpc-http-enabled=true",
        'rpc-http-host="0.0.0.0"',
        f"rpc-http-port={rpc_port}",
        f"rpc-http-api={_toml_list(RPC_APIS)}",
        f"host-allowlist={_toml_list(rpc_host_allowlist)}",
        "permissions-nodes-config-file-enabled=true",
        f"permissions-nodes-config-file={_toml_str(CONTAINER_PERMISSIONS)}",
        "permissions-accounts-config-file-enabled=true",
        f"permissions-accounts-config-file={_toml_str(CONTAINER_PERMISSIONS)}",
    ]
    return "\n".join(lines) + "\n"


# --- a validator set ----------------------------------------------------------------


@dataclass(frozen=True)
class Validator:
    """One organisation's validator: a name (the organisation code), key and P2P endpoint."""

    name: str
    key: NodeKey
    host: str
    p2p_port: int = DEFAULT_P2P_PORT

    @property
    def enode(self) -> str:
        return self.key.enode(self.host, self.p2p_port)

    def public_record(self) -> dict[str, Any]:
        """What other tools may know about this node: nothing secret."""
        return {
            "name": self.name,
            "address": to_checksum_address(self.key.address),
            "public_key": "0x" + self.key.node_id,
            "host": self.host,
            "p2p_port": self.p2p_port,
            "enode": self.enode,
        }


def besu_service_host(name: str) -> str:
    """The compose service (and DNS) name of an organisation's validator."""
    return f"besu-{name.lower()}"
