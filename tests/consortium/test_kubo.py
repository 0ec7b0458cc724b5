"""Kubo private-swarm material against published formats and vectors.

Sources:
- [PNET] go-libp2p core/pnet/codec_test.go: a V1 PSK is ``/key/swarm/psk/1.0.0/\\n``,
  ``/base16/\\n`` (or ``/base64/``), then the key; ``\\r\\n`` line ends are accepted;
  ``TestDecodeHex`` uses 32 x ``FF``.
- [KEYGEN] Kubuxu/go-ipfs-swarm-key-gen main.go: ``Println(path)``, ``Println("/base16/")``,
  ``Print(hex)`` (no final newline).
- [PEERID] libp2p/specs peer-ids/peer-ids.md, "Test vectors": the ED25519 private and
  public key protobufs.
- [AUTH] go-libp2p p2p/http/auth/internal/handshake/handshake_test.go
  (``TestWalkthroughInSpec``): the spec key's peer ID
  ``12D3KooWBtg3aaRMjxwedh83aGiUkwSxDwUZkzuJcfaqUmo7R3pq``; the all-zero seed's
  marshalled private key and peer ID ``12D3KooWDpJ7As7BWAwRMfu1VU2WCqNjvq387JEYKDBj4kx6nXTN``.
- [KUBO-CONFIG] ipfs/kubo docs/config.md: ``API.Authorizations`` (``AuthSecret``
  ``bearer:<token>``, ``AllowedPaths``), ``AutoConf.Enabled`` (disabled + ``"auto"`` =
  startup failure), ``Routing.Type``.
"""

from __future__ import annotations

import base64
import json
import shutil
import subprocess

import pytest

from govshare.consortium import kubo
from govshare.errors import InputError

SPEC_PRIV = bytes.fromhex(
    "080112407e0830617c4a7de83925dfb2694556b12936c477a0e1feb2e148ec9da60fee7d"
    "1ed1e8fae2c4a144b8be8fd4b47bf3d3b34b871c3cacf6010f0e42d474fce27e"
)
SPEC_PUB = bytes.fromhex("080112201ed1e8fae2c4a144b8be8fd4b47bf3d3b34b871c3cacf6010f0e42d474fce27e")
SPEC_PEER_ID = "12D3KooWBtg3aaRMjxwedh83aGiUkwSxDwUZkzuJcfaqUmo7R3pq"
ZERO_PRIV = bytes.fromhex(
    "08011240" + "00" * 32 + "3b6a27bcceb6a42d62a3a8d02a6f0d73653215771de243a63ac048a18b59da29"
)
ZERO_PEER_ID = "12D3KooWDpJ7As7BWAwRMfu1VU2WCqNjvq387JEYKDBj4kx6nXTN"


def test_swarm_key_text_is_the_reference_format() -> None:
    key = bytes(range(32))
    text = kubo.format_swarm_key(key)
    # [KEYGEN]: two header lines with newlines, the hex key without one.
    assert text == "/key/swarm/psk/1.0.0/\n/base16/\n" + key.hex()
    assert text.split("\n") == ["/key/swarm/psk/1.0.0/", "/base16/", key.hex()]
    assert kubo.parse_swarm_key(text) == key


@pytest.mark.parametrize("eol", ["\n", "\r\n"])
def test_swarm_key_decodes_like_go_libp2p(eol: str) -> None:
    # [PNET] TestDecodeHex / TestDecodeB64, both line-ending styles.
    hex_text = f"/key/swarm/psk/1.0.0/{eol}/base16/{eol}" + "FF" * 32
    assert kubo.parse_swarm_key(hex_text) == b"\xff" * 32
    b64 = base64.b64encode(bytes(range(32))).decode()
    assert kubo.parse_swarm_key(f"/key/swarm/psk/1.0.0/{eol}/base64/{eol}{b64}") == bytes(range(32))


@pytest.mark.parametrize(
    "bad",
    [
        "/key/swarm/psk/1.0.0/\n/verybadbase/\nHave fun decoding that key",  # [PNET] TestDecodeBad
        "/key/swarm/psk/2.0.0/\n/base16/\n" + "00" * 32,
        "/key/swarm/psk/1.0.0/\n/base16/\n" + "00" * 31,
        "/key/swarm/psk/1.0.0/",
    ],
)
def test_bad_swarm_keys_are_refused(bad: str) -> None:
    with pytest.raises(InputError):
        kubo.parse_swarm_key(bad)


def test_peer_id_from_the_libp2p_spec_vector() -> None:
    ident = kubo.PeerIdentity.from_private_key_protobuf(SPEC_PRIV)
    assert ident.public_key_protobuf == SPEC_PUB  # [PEERID]: private derives the public key
    assert ident.private_key_protobuf == SPEC_PRIV
    assert ident.peer_id == SPEC_PEER_ID  # [AUTH]
    # Identity multihash: 0x00, length 36, the public-key protobuf itself.
    assert kubo.b58decode(ident.peer_id) == bytes([0x00, 36]) + SPEC_PUB
    assert kubo.peer_id_from_public_key_protobuf(SPEC_PUB) == SPEC_PEER_ID


def test_zero_seed_vector_from_go_libp2p() -> None:
    ident = kubo.PeerIdentity(bytes(32))
    assert ident.private_key_protobuf == ZERO_PRIV
    assert ident.peer_id == ZERO_PEER_ID
    # Kubo's Identity.PrivKey is the standard base64 of that protobuf.
    assert ident.kubo_privkey == base64.b64encode(ZERO_PRIV).decode()
    assert ident.kubo_privkey.startswith("CAESQ")
    assert kubo.PeerIdentity.from_kubo_privkey(ident.kubo_privkey) == ident


def test_legacy_96_byte_private_keys_and_mismatches() -> None:
    data = SPEC_PRIV[4:]
    legacy = bytes([0x08, 0x01, 0x12, 96]) + data + data[32:]
    assert kubo.PeerIdentity.from_private_key_protobuf(legacy).peer_id == SPEC_PEER_ID
    broken = bytes([0x08, 0x01, 0x12, 96]) + data + bytes(32)
    with pytest.raises(InputError):
        kubo.PeerIdentity.from_private_key_protobuf(broken)
    wrong_pub = SPEC_PRIV[:-1] + bytes([SPEC_PRIV[-1] ^ 1])
    with pytest.raises(InputError):
        kubo.PeerIdentity.from_private_key_protobuf(wrong_pub)
    with pytest.raises(InputError):
        kubo.PeerIdentity.from_private_key_protobuf(bytes([0x08, 0x02]) + SPEC_PRIV[2:])


def test_base58_round_trip_keeps_leading_zeros() -> None:
    for data in (b"", b"\x00", b"\x00\x00\x01", bytes(range(40))):
        assert kubo.b58decode(kubo.b58encode(data)) == data


def _nodes(n: int) -> list[kubo.KuboNode]:
    return [
        kubo.KuboNode(
            f"ORG{i}", kubo.PeerIdentity(bytes([i]) * 32), kubo.kubo_service_host(f"org{i}")
        )
        for i in range(1, n + 1)
    ]


def test_config_fragment_is_a_closed_private_swarm() -> None:
    nodes = _nodes(4)
    frag = kubo.config_fragment(nodes[0], nodes)
    assert "auto" not in json.dumps(frag)  # AutoConf is off: no placeholder may remain
    assert frag["AutoConf.Enabled"] is False
    assert frag["Routing.Type"] == "dht"
    assert frag["Bootstrap"] == [n.multiaddr for n in nodes[1:]]
    assert all("/p2p/" + n.peer_id in a for n, a in zip(nodes[1:], frag["Bootstrap"], strict=True))
    assert [p["ID"] for p in frag["Peering.Peers"]] == [n.peer_id for n in nodes[1:]]
    net = frag["Swarm.Transports.Network"]
    assert net.pop("TCP") is True and not any(net.values())
    assert frag["Addresses.Swarm"] == ["/ip4/0.0.0.0/tcp/4001"]
    assert frag["DNS.Resolvers"] == {} and frag["Routing.DelegatedRouters"] == []


def test_authorizations_follow_kubo_docs() -> None:
    auth = kubo.authorizations("tok-EN_123")
    (entry,) = auth.values()
    assert entry == {"AuthSecret": "bearer:tok-EN_123", "AllowedPaths": list(kubo.KUBO_RPC_PATHS)}
    assert all(p.startswith("/api/v0/") for p in entry["AllowedPaths"])
    assert "/api/v0/config" not in entry["AllowedPaths"] and "/api/v0" not in entry["AllowedPaths"]
    with pytest.raises(InputError):
        kubo.authorizations('x" y')
    token = kubo.generate_api_token()
    assert len(token) >= 43 and kubo.authorizations(token)


def test_init_script_holds_no_secret_and_is_valid_sh() -> None:
    nodes = _nodes(4)
    script = kubo.init_script(nodes[0], kubo.config_fragment(nodes[0], nodes))
    assert nodes[0].identity.kubo_privkey not in script
    assert "bearer:" in script and "$TOKEN" in script
    assert f"PEER_ID={nodes[0].peer_id}" in script
    sh = shutil.which("sh")
    if sh is None:
        pytest.skip("no POSIX sh to syntax-check the script")
    res = subprocess.run([sh, "-n"], input=script, text=True, capture_output=True, check=False)
    assert res.returncode == 0, res.stderr


def test_init_script_applies_identity_and_token(tmp_path) -> None:
    """Run the script with a stub ``ipfs`` against a Kubo-shaped config file."""
    sh = shutil.which("sh")
    if sh is None or shutil.which("sed") is None:
        pytest.skip("needs sh and sed")
    nodes = _nodes(4)
    node = nodes[0]
    secrets_dir = tmp_path / "secrets"
    secrets_dir.mkdir()
    (secrets_dir / kubo.SECRET_SWARM_KEY).write_text(kubo.format_swarm_key(bytes(32)))
    (secrets_dir / kubo.SECRET_IDENTITY).write_text(node.identity.kubo_privkey)
    (secrets_dir / kubo.SECRET_API_TOKEN).write_text("tok123")
    repo = tmp_path / "repo"
    repo.mkdir()
    # Kubo writes its config with Go's json.MarshalIndent: `"Key": "value"`.
    (repo / "config").write_text(
        '{\n  "Identity": {\n    "PeerID": "12D3KooWold",\n    "PrivKey": "CAESQold+/="\n  }\n}\n'
    )
    bindir = tmp_path / "bin"
    bindir.mkdir()
    log = tmp_path / "ipfs.log"
    stub = bindir / "ipfs"
    stub.write_text(f'#!/bin/sh\nprintf "%s\\n" "$*" >> "{log}"\n')
    stub.chmod(0o755)
    script = kubo.init_script(node, kubo.config_fragment(node, nodes)).replace(
        'SECRETS="/secrets"', f'SECRETS="{secrets_dir}"'
    )
    env = {"PATH": f"{bindir}:/usr/bin:/bin", "IPFS_PATH": str(repo)}
    res = subprocess.run([sh], input=script, text=True, capture_output=True, env=env, check=False)
    assert res.returncode == 0, res.stderr
    cfg = json.loads((repo / "config").read_text())
    assert cfg["Identity"] == {"PeerID": node.peer_id, "PrivKey": node.identity.kubo_privkey}
    assert (repo / "swarm.key").read_text() == kubo.format_swarm_key(bytes(32))
    calls = log.read_text().splitlines()
    auth_call = next(c for c in calls if "API.Authorizations" in c)
    auth = json.loads(auth_call.split("API.Authorizations ", 1)[1])
    assert auth == kubo.authorizations("tok123")
    assert any(c.startswith("config --json AutoConf.Enabled false") for c in calls)
