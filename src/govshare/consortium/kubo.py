"""Kubo private-swarm material: swarm key, peer identities, per-node config.

Formats, from their sources:

- Swarm key (go-libp2p ``core/pnet``, V1 PSK): three lines, ``/key/swarm/psk/1.0.0/``,
  ``/base16/``, then the 32-byte key as 64 hex digits. The reference generator
  (``ipfs-swarm-key-gen``) prints the last line without a newline; so do we.
- Peer identity (libp2p peer-id spec): keys are protobuf ``{1: KeyType, 2: Data}``;
  an Ed25519 public key's Data is its 32 bytes, a private key's Data is
  ``seed || public key`` (64 bytes). An Ed25519 public-key protobuf is 36 bytes
  (<= 42), so the peer ID is its *identity* multihash (``0x00 0x24 || bytes``),
  written in base58btc (``12D3KooW...``). Kubo stores ``Identity.PrivKey`` as the
  standard base64 of the private-key protobuf.
- Kubo config (docs/config.md): ``API.Authorizations`` maps a name to
  ``{"AuthSecret": "bearer:<token>", "AllowedPaths": [path prefixes]}``;
  ``AutoConf.Enabled=false`` requires every ``"auto"`` placeholder to be replaced
  (``Bootstrap``, ``DNS.Resolvers``, ``Routing.DelegatedRouters``,
  ``Ipns.DelegatedPublishers``); a private network may not use ``Routing.Type=auto``.
"""

from __future__ import annotations

import base64
import json
import secrets
import shlex
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from govshare.errors import InputError

SWARM_KEY_PATH_V1 = "/key/swarm/psk/1.0.0/"
SWARM_KEY_BASE16 = "/base16/"
SWARM_KEY_BASE64 = "/base64/"
SWARM_PORT = 4001
API_PORT = 5001

# libp2p KeyType enum and protobuf field tags (peer-id spec).
_KEYTYPE_ED25519 = 1
_TAG_TYPE = 0x08  # field 1, varint
_TAG_DATA = 0x12  # field 2, length-delimited
_MH_IDENTITY = 0x00
_MH_SHA2_256 = 0x12

# The Kubo RPC endpoints govshare's storage backend calls; the broker's bearer token
# is good for these prefixes only (Kubo always allows /api/v0/version).
KUBO_RPC_PATHS: tuple[str, ...] = (
    "/api/v0/add",
    "/api/v0/cat",
    "/api/v0/block/get",
    "/api/v0/block/stat",
    "/api/v0/dag/export",
    "/api/v0/pin/add",
    "/api/v0/pin/ls",
    "/api/v0/pin/rm",
    "/api/v0/id",
    "/api/v0/swarm/peers",
)
AUTHORIZATION_NAME = "govshare-broker"

# Where the compose stack mounts the per-organisation secrets inside the Kubo container.
CONTAINER_SECRETS = "/secrets"
# File names (not secrets themselves).
SECRET_SWARM_KEY = "swarm.key"  # noqa: S105
SECRET_IDENTITY = "kubo_identity.key"  # noqa: S105
SECRET_API_TOKEN = "kubo_api_token"  # noqa: S105


# --- swarm key ----------------------------------------------------------------------


def generate_swarm_key() -> bytes:
    return secrets.token_bytes(32)


def format_swarm_key(key: bytes) -> str:
    """The ``swarm.key`` text, as ``ipfs-swarm-key-gen`` writes it (no final newline)."""
    if len(key) != 32:
        raise InputError("A swarm key is 32 bytes.")
    return f"{SWARM_KEY_PATH_V1}\n{SWARM_KEY_BASE16}\n{key.hex()}"


def parse_swarm_key(text: str) -> bytes:
    """Decode a V1 PSK file as go-libp2p's ``DecodeV1PSK`` does (``\\n`` or ``\\r\\n``)."""
    parts = text.split("\n", 2)
    if len(parts) < 3:
        raise InputError("A swarm key file has three lines: path, encoding, key.")
    header, encoding, body = parts[0].rstrip("\r"), parts[1].rstrip("\r"), parts[2]
    if header != SWARM_KEY_PATH_V1:
        raise InputError(f"A swarm key file starts with {SWARM_KEY_PATH_V1!r}.")
    body = body.strip()
    try:
        if encoding == SWARM_KEY_BASE16:
            key = bytes.fromhex(body[:64])
        elif encoding == SWARM_KEY_BASE64:
            key = base64.b64decode(body, validate=True)[:32]
        else:
            raise InputError(f"Unknown swarm key encoding {encoding!r} (expected /base16/).")
    except ValueError as exc:
        raise InputError("The swarm key is not valid for its encoding.") from exc
    if len(key) != 32:
        raise InputError("A swarm key is 32 bytes.")
    return key


# --- base58btc (the bitcoin alphabet) -----------------------------------------------

_B58 = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"


def b58encode(data: bytes) -> str:
    n = int.from_bytes(data, "big")
    out = []
    while n:
        n, r = divmod(n, 58)
        out.append(_B58[r])
    pad = len(data) - len(data.lstrip(b"\x00"))
    return "1" * pad + "".join(reversed(out))


def b58decode(text: str) -> bytes:
    n = 0
    for ch in text:
        i = _B58.find(ch)
        if i < 0:
            raise InputError(f"Not base58btc: {ch!r}.")
        n = n * 58 + i
    body = n.to_bytes((n.bit_length() + 7) // 8, "big") if n else b""
    pad = len(text) - len(text.lstrip("1"))
    return b"\x00" * pad + body


# --- peer identities ----------------------------------------------------------------


def _key_protobuf(key_type: int, data: bytes) -> bytes:
    if len(data) > 127:
        raise InputError("Key data too long for this encoder.")  # single-byte varint only
    return bytes([_TAG_TYPE, key_type, _TAG_DATA, len(data)]) + data


def _parse_key_protobuf(pb: bytes) -> tuple[int, bytes]:
    if len(pb) < 4 or pb[0] != _TAG_TYPE or pb[2] != _TAG_DATA or pb[3] != len(pb) - 4:
        raise InputError("Not a libp2p key protobuf (Type, Data).")
    return pb[1], pb[4:]


def peer_id_from_public_key_protobuf(pub_pb: bytes) -> str:
    """The base58btc peer ID: identity multihash when <= 42 bytes, else sha2-256."""
    if len(pub_pb) <= 42:
        mh = bytes([_MH_IDENTITY, len(pub_pb)]) + pub_pb
    else:
        import hashlib

        mh = bytes([_MH_SHA2_256, 32]) + hashlib.sha256(pub_pb).digest()
    return b58encode(mh)


@dataclass(frozen=True)
class PeerIdentity:
    """An Ed25519 libp2p identity (Kubo's default key type). Secret parts stay out of repr."""

    seed: bytes = field(repr=False)

    def __post_init__(self) -> None:
        if len(self.seed) != 32:
            raise InputError("An Ed25519 private key seed is 32 bytes.")

    @classmethod
    def generate(cls) -> PeerIdentity:
        return cls(secrets.token_bytes(32))

    @classmethod
    def from_private_key_protobuf(cls, pb: bytes) -> PeerIdentity:
        """Accept the 64-byte ``seed||pub`` Data, and the legacy 96-byte ``seed||pub||pub``."""
        key_type, data = _parse_key_protobuf(pb)
        if key_type != _KEYTYPE_ED25519:
            raise InputError("Only Ed25519 peer identities are supported.")
        if len(data) == 96:
            if data[32:64] != data[64:96]:
                raise InputError("Legacy Ed25519 key: the two public key copies differ.")
            data = data[:64]
        if len(data) != 64:
            raise InputError("An Ed25519 private key protobuf carries 64 bytes.")
        ident = cls(data[:32])
        if ident.public_key != data[32:]:
            raise InputError("The Ed25519 private key does not match its public key.")
        return ident

    @classmethod
    def from_kubo_privkey(cls, b64: str) -> PeerIdentity:
        try:
            raw = base64.b64decode(b64.strip(), validate=True)
        except ValueError as exc:
            raise InputError("Identity.PrivKey is not base64.") from exc
        return cls.from_private_key_protobuf(raw)

    @property
    def public_key(self) -> bytes:
        pub = Ed25519PrivateKey.from_private_bytes(self.seed).public_key()
        return pub.public_bytes(Encoding.Raw, PublicFormat.Raw)

    @property
    def public_key_protobuf(self) -> bytes:
        return _key_protobuf(_KEYTYPE_ED25519, self.public_key)

    @property
    def private_key_protobuf(self) -> bytes:
        return _key_protobuf(_KEYTYPE_ED25519, self.seed + self.public_key)

    @property
    def peer_id(self) -> str:
        return peer_id_from_public_key_protobuf(self.public_key_protobuf)

    @property
    def kubo_privkey(self) -> str:
        """``Identity.PrivKey``: standard base64 of the private-key protobuf."""
        return base64.b64encode(self.private_key_protobuf).decode("ascii")


# --- per-node config ----------------------------------------------------------------


def generate_api_token() -> str:
    """A bearer token: 256 random bits, URL-safe base64 (safe in JSON and shell)."""
    return secrets.token_urlsafe(32)


def kubo_service_host(name: str) -> str:
    return f"kubo-{name.lower()}"


class PeerLike(Protocol):
    """What a node's config needs to know of a swarm member (public facts only)."""

    @property
    def name(self) -> str: ...
    @property
    def peer_id(self) -> str: ...
    @property
    def swarm_port(self) -> int: ...
    @property
    def dial_addr(self) -> str: ...
    @property
    def multiaddr(self) -> str: ...


@dataclass(frozen=True)
class KuboPeer:
    """A swarm member as the others know it (``peers.json``): no key material."""

    name: str
    peer_id: str
    host: str
    swarm_port: int = SWARM_PORT

    def __post_init__(self) -> None:
        raw = b58decode(self.peer_id)
        if len(raw) < 3 or raw[0] not in (_MH_IDENTITY, _MH_SHA2_256) or raw[1] != len(raw) - 2:
            raise InputError(f"{self.peer_id!r} is not a libp2p peer ID.")
        if not self.host or any(c in self.host for c in "/ @"):
            raise InputError(f"Invalid Kubo host {self.host!r}.")

    @property
    def dial_addr(self) -> str:
        return f"/dns4/{self.host}/tcp/{self.swarm_port}"

    @property
    def multiaddr(self) -> str:
        return f"{self.dial_addr}/p2p/{self.peer_id}"

    def public_record(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "peer_id": self.peer_id,
            "host": self.host,
            "multiaddr": self.multiaddr,
        }

    @classmethod
    def from_record(cls, record: Any) -> KuboPeer:
        """Parse one ``peers.json`` record (as :meth:`public_record` writes it)."""
        if not isinstance(record, dict):
            raise InputError("A peers.json record must be an object.")
        try:
            name, peer_id, host = str(record["name"]), str(record["peer_id"]), str(record["host"])
        except KeyError as exc:
            raise InputError(f"A peers.json record lacks {exc.args[0]!r}.") from None
        port = SWARM_PORT
        parts = str(record.get("multiaddr", "")).split("/")
        if "tcp" in parts and parts.index("tcp") + 1 < len(parts):
            try:
                port = int(parts[parts.index("tcp") + 1])
            except ValueError:
                raise InputError(f"Bad multiaddr in the peers.json record of {name}.") from None
        return cls(name=name, peer_id=peer_id, host=host, swarm_port=port)


@dataclass(frozen=True)
class KuboNode:
    name: str
    identity: PeerIdentity
    host: str
    swarm_port: int = SWARM_PORT

    @property
    def peer_id(self) -> str:
        return self.identity.peer_id

    @property
    def peer(self) -> KuboPeer:
        return KuboPeer(self.name, self.peer_id, self.host, self.swarm_port)

    @property
    def dial_addr(self) -> str:
        return self.peer.dial_addr

    @property
    def multiaddr(self) -> str:
        return self.peer.multiaddr

    def public_record(self) -> dict[str, Any]:
        return self.peer.public_record()


def config_fragment(node: PeerLike, consortium: Sequence[PeerLike]) -> dict[str, Any]:
    """The Kubo config keys govshare sets on ``node`` (no secrets: the API token and the
    identity are applied from mounted secret files by the init script).

    A private swarm reachable only by the consortium: bootstrap and peering with the
    other members only, no AutoConf, no public delegated routing or DNS resolvers, DHT
    routing among members, TCP as the only transport (libp2p private networks do not
    run over QUIC/WebTransport/WebRTC), no relays, no hole punching, no mDNS.
    """
    others = [n for n in consortium if n.peer_id != node.peer_id]
    return {
        "Addresses.API": f"/ip4/0.0.0.0/tcp/{API_PORT}",
        "Addresses.Gateway": [],
        "Addresses.Swarm": [f"/ip4/0.0.0.0/tcp/{node.swarm_port}"],
        "Addresses.Announce": [node.dial_addr],
        "AutoConf.Enabled": False,
        "AutoNAT.ServiceMode": "disabled",
        "AutoTLS.Enabled": False,
        "Bootstrap": [n.multiaddr for n in others],
        "Peering.Peers": [{"ID": n.peer_id, "Addrs": [n.dial_addr]} for n in others],
        "DNS.Resolvers": {},
        "Discovery.MDNS.Enabled": False,
        "Ipns.DelegatedPublishers": [],
        "Routing.Type": "dht",
        "Routing.DelegatedRouters": [],
        "Swarm.DisableNatPortMap": True,
        "Swarm.EnableHolePunching": False,
        "Swarm.RelayClient.Enabled": False,
        "Swarm.RelayService.Enabled": False,
        "Swarm.Transports.Network": {
            "TCP": True,
            "QUIC": False,
            "Websocket": False,
            "WebTransport": False,
            "WebRTCDirect": False,
            "Relay": False,
        },
    }


def authorizations(token: str, paths: Sequence[str] = KUBO_RPC_PATHS) -> dict[str, Any]:
    """``API.Authorizations``: one bearer token, restricted to govshare's RPC paths."""
    if not token or any(c in token for c in "\"'\\ \n"):
        raise InputError("The Kubo API token must be a plain URL-safe string.")
    return {AUTHORIZATION_NAME: {"AuthSecret": f"bearer:{token}", "AllowedPaths": list(paths)}}


def init_script(node: PeerLike, fragment: dict[str, Any]) -> str:
    """A ``/container-init.d`` script for the ``ipfs/kubo`` image.

    The image runs these scripts after ``ipfs init`` and before ``ipfs daemon`` on every
    start, so the script is idempotent: it installs the swarm key, sets this node's
    fixed identity (``ipfs config`` refuses to touch ``Identity.PrivKey``, so the
    repo's config file is edited while the daemon is down), the bearer-token
    authorization and the private-network settings. Secrets are read from files
    mounted under ``/secrets``; none is written into this script.
    """
    auth_json = json.dumps(authorizations("__TOKEN__"), separators=(",", ":"))
    auth_prefix, auth_suffix = auth_json.split("__TOKEN__")
    lines = [
        "#!/bin/sh",
        "# Generated by `govshare consortium kubo`: private-swarm settings for "
        f"{node.name} ({node.peer_id}).",
        "set -eu",
        f'SECRETS="{CONTAINER_SECRETS}"',
        'CONFIG="$IPFS_PATH/config"',
        "",
        "# The swarm key: replaced on every start so a rotated key takes effect.",
        'rm -f "$IPFS_PATH/swarm.key"',
        f'cp "$SECRETS/{SECRET_SWARM_KEY}" "$IPFS_PATH/swarm.key"',
        'chmod 0400 "$IPFS_PATH/swarm.key"',
        "",
        "# Fixed identity: the other members bootstrap to this peer ID.",
        f'PRIVKEY="$(cat "$SECRETS/{SECRET_IDENTITY}")"',
        f"PEER_ID={shlex.quote(node.peer_id)}",
        'sed -i -e "s|\\"PeerID\\": \\"[^\\"]*\\"|\\"PeerID\\": \\"$PEER_ID\\"|" \\',
        '  -e "s|\\"PrivKey\\": \\"[^\\"]*\\"|\\"PrivKey\\": \\"$PRIVKEY\\"|" "$CONFIG"',
        "unset PRIVKEY",
        "",
        "# RPC access only with the broker's bearer token, only on govshare's paths.",
        f'TOKEN="$(cat "$SECRETS/{SECRET_API_TOKEN}")"',
        "ipfs config --json API.Authorizations "
        f'{shlex.quote(auth_prefix)}"$TOKEN"{shlex.quote(auth_suffix)}',
        "unset TOKEN",
        "",
        "# Private network: consortium peers only.",
    ]
    for key, value in fragment.items():
        lines.append(
            f"ipfs config --json {key} {shlex.quote(json.dumps(value, separators=(',', ':')))}"
        )
    return "\n".join(lines) + "\n"
