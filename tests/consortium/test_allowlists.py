"""Besu's permissions_config.toml, byte for byte.

Sources:
- [LOCAL-DOC] besu-docs docs/private-networks/how-to/use-permissioning/local.md,
  "Permissions configuration file" sample (the nodes-allowlist line).
- [PERSISTOR] besu ethereum/permissioning/.../AllowlistPersistor.java: Besu rewrites
  a list as ``String.format("%s=[%s]", key, values "\\"v\\"" joined by ",")``.
- [CONTROLLER] AccountLocalConfigPermissioningController.isValidAccountString: ``0x`` +
  20 bytes; duplicate entries are refused.
"""

from __future__ import annotations

import json
import tomllib

import pytest

from govshare.consortium import allowlists as al
from govshare.errors import InputError

DOC_ENODES = [
    "enode://7e4ef30e9ec683f26ad76ffca5b5148fa7a6575f4cfad4eb0f52f9c3d8335f4a9b6f9e66fcc73ef95ed7a2a52784d4f372e7750ac8ae0b544309a5b391a23dd7@127.0.0.1:30303",
    "enode://2feb33b3c6c4a8f77d84a5ce44954e83e5f163e7a65f7f7a7fec499ceb0ddd76a46ef635408c513d64c076470eac86b7f2c8ae4fcd112cb28ce82c0d64ec2c94@127.0.0.1:30304",
    "enode://7b61d5ee4b44335873e6912cb5dd3e3877c860ba21417c9b9ef1f7e500a82213737d4b269046d0669fb2299a234ca03443f25fe5f706b693b3669e5c92478ade@127.0.0.1:30305",
]
# [LOCAL-DOC], copied verbatim.
DOC_NODES_LINE = (
    'nodes-allowlist=["enode://7e4ef30e9ec683f26ad76ffca5b5148fa7a6575f4cfad4eb0f52f9c3d8335f4a9b6f9e66fcc73ef95ed7a2a52784d4f372e7750ac8ae0b544309a5b391a23dd7@127.0.0.1:30303",'
    '"enode://2feb33b3c6c4a8f77d84a5ce44954e83e5f163e7a65f7f7a7fec499ceb0ddd76a46ef635408c513d64c076470eac86b7f2c8ae4fcd112cb28ce82c0d64ec2c94@127.0.0.1:30304",'
    '"enode://7b61d5ee4b44335873e6912cb5dd3e3877c860ba21417c9b9ef1f7e500a82213737d4b269046d0669fb2299a234ca03443f25fe5f706b693b3669e5c92478ade@127.0.0.1:30305"]'
)
DOC_ACCOUNTS = [
    "0xb9b81ee349c3807e46bc71aa2632203c5b462032",
    "0xb9b81ee349c3807e46bc71aa2632203c5b462034",
]


def test_nodes_line_is_the_documented_line_byte_for_byte() -> None:
    text = al.Allowlists.build(DOC_ACCOUNTS, DOC_ENODES).render()
    lines = text.split("\n")
    assert lines[1] == DOC_NODES_LINE
    # [PERSISTOR] format for the accounts list (the docs' sample separates with ", ";
    # Besu itself writes "," and both parse to the same TOML array).
    assert lines[0] == 'accounts-allowlist=["' + '","'.join(DOC_ACCOUNTS) + '"]'
    assert text == lines[0] + "\n" + DOC_NODES_LINE + "\n"


def test_parses_back_with_tomllib_and_matches_the_docs_sample() -> None:
    text = al.render_permissions_config(DOC_ACCOUNTS, DOC_ENODES)
    data = tomllib.loads(text)
    docs_sample = tomllib.loads(
        'accounts-allowlist=["0xb9b81ee349c3807e46bc71aa2632203c5b462032", '
        '"0xb9b81ee349c3807e46bc71aa2632203c5b462034"]\n\n' + DOC_NODES_LINE + "\n"
    )
    assert data == docs_sample
    assert al.parse_permissions_config(text) == al.Allowlists(
        tuple(DOC_ACCOUNTS), tuple(DOC_ENODES)
    )


def test_accounts_are_normalised_and_deduplicated() -> None:
    lists = al.Allowlists.build(
        ["0xB9B81EE349C3807E46BC71AA2632203C5B462032", DOC_ACCOUNTS[0], bytes(20)], DOC_ENODES[:1]
    )
    assert lists.accounts == (DOC_ACCOUNTS[0], "0x" + "00" * 20)
    assert al.Allowlists.build([], DOC_ENODES + DOC_ENODES).nodes == tuple(DOC_ENODES)


@pytest.mark.parametrize("bad", ["0x1234", "b9b81ee349c3807e46bc71aa2632203c5b4620zz", ""])
def test_bad_accounts_are_refused(bad: str) -> None:
    with pytest.raises(InputError):
        al.normalise_account(bad)


@pytest.mark.parametrize(
    "bad",
    [
        "enode://" + "ab" * 64,  # no host
        "enode://" + "ab" * 63 + "@h:30303",  # short id
        "enode://" + "ab" * 64 + "@h:0",
        "enode://" + "ab" * 64 + "@h:70000",
        "http://h:30303",
    ],
)
def test_bad_enodes_are_refused(bad: str) -> None:
    with pytest.raises(InputError):
        al.validate_enode(bad)


def test_enodes_come_from_nodes_json(tmp_path) -> None:
    p = tmp_path / "nodes.json"
    p.write_text(json.dumps({"chain_id": 1, "nodes": [{"name": "A", "enode": DOC_ENODES[0]}]}))
    assert al.load_node_enodes(p) == DOC_ENODES[:1]
    p.write_text(json.dumps({"nodes": [{"name": "A"}]}))
    with pytest.raises(InputError):
        al.load_node_enodes(p)
    with pytest.raises(InputError):
        al.load_node_enodes(tmp_path / "missing.json")
