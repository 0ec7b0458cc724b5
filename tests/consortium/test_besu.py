"""Besu QBFT genesis material against known answers published by Besu.

Sources (hyperledger/besu and hyperledger/besu-docs):

- [RLP-CLI] besu/src/test/java/org/hyperledger/besu/cli/subcommands/rlp/RLPSubCommandTest.java,
  ``canEncodeToQbftExtraData`` (QBFT) and ``encodeWithoutPathMustWriteToStandardOutput`` (IBFT).
- [QBFT-DOC] besu-docs docs/private-networks/how-to/configure/consensus/qbft.md: the
  "Generate extra data" example (``toEncode.json`` -> RLP), the block-header and the
  contract validator-selection genesis examples.
- [CODEC] consensus/qbft/src/test/java/org/hyperledger/besu/consensus/qbft/
  QbftExtraDataCodecTest.java, ``RAW_HEX_ENCODING_STRING`` (vanity 0x01..0x20,
  validators 0x..01/0x..02, add vote for 0x..01, round 0xFEDCBA, two seals).
- [TUTORIAL] besu-docs docs/private-networks/tutorials/qbft.md: the test accounts'
  private keys and addresses in ``qbftConfigFile.json``.
- [BFT-RULE] consensus/common/.../BftValidatorsValidationRule.java: "Validators are
  not sorted in ascending order" invalidates a header.
"""

from __future__ import annotations

import tomllib

import pytest

from govshare.consortium import besu
from govshare.errors import InputError

A = bytes.fromhex


def addrs(*hexes: str) -> list[bytes]:
    return [besu.parse_address(h) for h in hexes]


# [RLP-CLI] canEncodeToQbftExtraData
RLP_CLI_VALIDATORS = addrs(
    "be068f726a13c8d46c44be6ce9d275600e1735a4", "5ff6f4b66a46a2b2310a6f3a93aaddc0d9a1c193"
)
RLP_CLI_QBFT = (
    "0xf84fa00000000000000000000000000000000000000000000000000000000000000000ea94be068f726a13c8d"
    "46c44be6ce9d275600e1735a4945ff6f4b66a46a2b2310a6f3a93aaddc0d9a1c193c080c0"
)
# [RLP-CLI] the same two validators as IBFT 2.0 extra data (4-byte round, RLP null vote).
RLP_CLI_IBFT = (
    "0xf853a00000000000000000000000000000000000000000000000000000000000000000ea94be068f726a13c8d"
    "46c44be6ce9d275600e1735a4945ff6f4b66a46a2b2310a6f3a93aaddc0d9a1c193808400000000c0"
)

# [QBFT-DOC] "Generate extra data": toEncode.json, in the order the page lists them.
DOC_TOENCODE = addrs(
    "0x4592c8e45706cc08b8f44b11e43cba0cfc5892cb",
    "0x06e23768a0f59cf365e18c2e0c89e151bcdedc70",
    "0xc5327f96ee02d7bcbc1bf1236b8c15148971e1de",
    "0xab5e7f4061c605820d3744227eed91ff8e2c8908",
)
DOC_TOENCODE_RLP = (
    "0xf87aa00000000000000000000000000000000000000000000000000000000000000000f854944592c8e45706"
    "cc08b8f44b11e43cba0cfc5892cb9406e23768a0f59cf365e18c2e0c89e151bcdedc7094c5327f96ee02d7bcbc"
    "1bf1236b8c15148971e1de94ab5e7f4061c605820d3744227eed91ff8e2c8908c080c0"
)
# [QBFT-DOC] block-header validator selection genesis example.
DOC_GENESIS_VALIDATORS = addrs(
    "64a702e6263b7297a96638cac6ae65e6541f4169",
    "3923390ad55e90c237593b3b0e401f3b08a03185",
    "aefdb9a738c9f433e5b6b212a6d62f6370c2f692",
    "c7eeb9a4e00ce683cf93039b212648e01c6c6b78",
)
DOC_GENESIS_EXTRA = (
    "0xf87aa00000000000000000000000000000000000000000000000000000000000000000f8549464a702e6263b"
    "7297a96638cac6ae65e6541f4169943923390ad55e90c237593b3b0e401f3b08a0318594aefdb9a738c9f433e5"
    "b6b212a6d62f6370c2f69294c7eeb9a4e00ce683cf93039b212648e01c6c6b78c080c0"
)
# [QBFT-DOC] contract validator selection: no validators in extraData.
DOC_CONTRACT_EXTRA = (
    "0xe5a00000000000000000000000000000000000000000000000000000000000000000c0c080c0"
)

# [CODEC] RAW_HEX_ENCODING_STRING
CODEC_RAW = (
    "0xf8f0a00102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f20ea940000000000000000"
    "000000000000000000000001940000000000000000000000000000000000000002d7940000000000000000"
    "00000000000000000000000181ff83fedcbaf886b841000000000000000000000000000000000000000000"
    "0000000000000000000001000000000000000000000000000000000000000000000000000000000000000a"
    "00b841000000000000000000000000000000000000000000000000000000000000000a0000000000000000"
    "00000000000000000000000000000000000000000000000100"
)


def _seal(r: int, s: int, v: int) -> bytes:
    # Besu's SECPSignature.encodedBytes(): r (32) || s (32) || recId (1).
    return r.to_bytes(32, "big") + s.to_bytes(32, "big") + bytes([v])


def hexof(b: bytes) -> str:
    return "0x" + b.hex()


@pytest.mark.parametrize(
    ("validators", "expected"),
    [
        pytest.param(RLP_CLI_VALIDATORS, RLP_CLI_QBFT, id="besu-rlp-cli-2"),
        pytest.param(DOC_TOENCODE, DOC_TOENCODE_RLP, id="besu-docs-toEncode-4"),
        pytest.param(DOC_GENESIS_VALIDATORS, DOC_GENESIS_EXTRA, id="besu-docs-genesis-4"),
        pytest.param([], DOC_CONTRACT_EXTRA, id="besu-docs-contract-0"),
    ],
)
def test_extra_data_matches_besu_known_answers(validators: list[bytes], expected: str) -> None:
    assert hexof(besu.encode_qbft_extra_data(validators)) == expected
    decoded = besu.decode_qbft_extra_data(A(expected[2:]))
    assert list(decoded.validators) == validators
    assert decoded.vote is None and decoded.round_number == 0 and decoded.seals == ()
    assert decoded.vanity == bytes(32)


def test_fully_populated_extra_data_matches_besu_codec_test() -> None:
    encoded = besu.encode_qbft_extra_data(
        addrs("0x" + "00" * 19 + "01", "0x" + "00" * 19 + "02"),
        vanity=bytes(range(1, 33)),
        vote=besu.Vote(recipient=besu.parse_address("0x" + "00" * 19 + "01"), add=True),
        round_number=0x00FEDCBA,
        seals=[_seal(1, 10, 0), _seal(10, 1, 0)],
    )
    assert hexof(encoded) == CODEC_RAW
    back = besu.decode_qbft_extra_data(encoded)
    assert back.vote == besu.Vote(recipient=A("00" * 19 + "01"), add=True)
    assert back.round_number == 0xFEDCBA
    assert back.seals == (_seal(1, 10, 0), _seal(10, 1, 0))


def test_drop_vote_is_an_empty_byte_string() -> None:
    # [CODEC] emptyListConstituteValidContent: drop vote = [recipient, writeNull()].
    who = A("00" * 19 + "01")
    enc = besu.encode_qbft_extra_data([], vote=besu.Vote(who, add=False))
    assert enc.endswith(bytes([0xD6, 0x94]) + who + b"\x80" + b"\x80\xc0")
    assert besu.decode_qbft_extra_data(enc).vote == besu.Vote(who, add=False)


def test_qbft_is_not_the_ibft_encoding() -> None:
    # The same validators encode differently as IBFT 2.0 ([RLP-CLI] default type):
    # QBFT writes the round as an integer scalar and an empty list for "no vote".
    assert hexof(besu.encode_qbft_extra_data(RLP_CLI_VALIDATORS)) != RLP_CLI_IBFT


def test_round_with_leading_zero_is_rejected_like_besu() -> None:
    # [CODEC] incorrectlyEncodedRoundThrowsRlpException: readIntScalar refuses 0x00dcba.
    import rlp

    bad = rlp.encode([bytes(32), [], [], b"\x00\xdc\xba", []])
    with pytest.raises(InputError):
        besu.decode_qbft_extra_data(bad)


def test_genesis_extra_data_lists_validators_in_ascending_order() -> None:
    # [BFT-RULE] and [QBFT-DOC] ("a list of the initial validators, in ascending order").
    extra = besu.genesis_extra_data(DOC_TOENCODE)
    got = list(besu.decode_qbft_extra_data(A(extra[2:])).validators)
    assert got == sorted(DOC_TOENCODE)
    assert got[0] == A("06e23768a0f59cf365e18c2e0c89e151bcdedc70")
    # Already-sorted input is the Besu-documented bytes unchanged.
    assert besu.genesis_extra_data(sorted(RLP_CLI_VALIDATORS)) == hexof(
        besu.encode_qbft_extra_data(sorted(RLP_CLI_VALIDATORS))
    )
    assert besu.genesis_extra_data(RLP_CLI_VALIDATORS + RLP_CLI_VALIDATORS) == (
        besu.genesis_extra_data(RLP_CLI_VALIDATORS)
    )


@pytest.mark.parametrize(
    ("private_key", "address"),
    [
        # [TUTORIAL] qbftConfigFile.json alloc (Besu's documented test accounts).
        (
            "8f2a55949038a9610f50fb23b5883af3b4ecb3c3bb792cbcefbd1542c692be63",
            "fe3b557e8fb62b89f4916b721be55ceb828dbd73",
        ),
        (
            "c87509a1c067bbde78beb793e6fa76530b6382a4c0241e5e4a9ec0a0f44dc0d3",
            "627306090abab3a6e1400e9345bc60c78a8bef57",
        ),
        (
            "ae6ae8e5ccbfb04590405997ee2d52d2b330726137b875053c36d94e974d162f",
            "f17f52151ebef6c7334fad080c5704d77216b732",
        ),
    ],
)
def test_address_derivation_matches_besu_test_accounts(private_key: str, address: str) -> None:
    for text in (private_key, "0x" + private_key, "0x" + private_key + "\n"):
        key = besu.NodeKey.parse_key_file(text)
        assert key.address_hex == "0x" + address
        assert besu.address_from_public_key(key.public_key) == A(address)


def test_key_file_round_trip_and_format(tmp_path) -> None:
    key = besu.NodeKey.generate()
    text = key.key_file_text()
    # KeyPairUtil.storeKeyPair: "0x" + 64 hex digits, nothing else.
    assert text.startswith("0x") and len(text) == 66 and "\n" not in text
    p = tmp_path / "key"
    p.write_text(text)
    assert besu.NodeKey.load(p) == key
    assert key.public_key_file_text() == "0x" + key.node_id and len(key.node_id) == 128
    assert key.key_file_text() not in repr(key) and key.private_key.hex() not in repr(key)


@pytest.mark.parametrize("bad", ["", "0x12", "0x" + "00" * 32, "zz" * 32, "0x11\n0x22"])
def test_bad_key_files_are_refused(bad: str) -> None:
    with pytest.raises(InputError):
        besu.NodeKey.parse_key_file(bad)


def test_enode_url_format() -> None:
    key = besu.NodeKey.from_hex("8f2a55949038a9610f50fb23b5883af3b4ecb3c3bb792cbcefbd1542c692be63")
    enode = key.enode("besu-tax", 30303)
    assert enode == f"enode://{key.node_id}@besu-tax:30303"
    with pytest.raises(InputError):
        key.enode("bad host", 30303)
    with pytest.raises(InputError):
        key.enode("besu-tax", 0)


def test_genesis_is_a_free_gas_cancun_qbft_genesis() -> None:
    keys = [besu.NodeKey.generate() for _ in range(4)]
    g = besu.build_genesis([k.address for k in keys], besu.GenesisOptions(chain_id=2025))
    cfg = g["config"]
    assert cfg["chainId"] == 2025
    assert cfg["qbft"] == {
        "blockperiodseconds": 2,
        "epochlength": 30000,
        "requesttimeoutseconds": 4,
    }
    assert cfg["berlinBlock"] == 0 and cfg["londonBlock"] == 0
    assert cfg["shanghaiTime"] == 0 and cfg["cancunTime"] == 0
    assert cfg["zeroBaseFee"] is True
    assert g["mixHash"] == besu.QBFT_MIX_HASH
    assert bytes.fromhex(g["mixHash"][2:]) == b"ctical byzantine fault tolerance"
    assert g["difficulty"] == "0x1"
    assert int(g["gasLimit"], 16) >= 2**52
    got = besu.decode_qbft_extra_data(A(g["extraData"][2:])).validators
    assert list(got) == sorted(k.address for k in keys)


def test_genesis_options_are_validated() -> None:
    with pytest.raises(InputError):
        besu.GenesisOptions(chain_id=0)
    with pytest.raises(InputError):
        besu.GenesisOptions(chain_id=1, block_period_seconds=0)
    with pytest.raises(InputError):
        besu.genesis_extra_data([])


def test_node_config_is_valid_toml_with_free_gas_and_allowlists() -> None:
    text = besu.node_config_toml(bootnodes=["enode://" + "ab" * 64 + "@besu-x:30303"])
    cfg = tomllib.loads(text)
    assert cfg["min-gas-price"] == 0
    assert cfg["permissions-nodes-config-file-enabled"] is True
    assert cfg["permissions-accounts-config-file-enabled"] is True
    assert cfg["permissions-nodes-config-file"] == besu.CONTAINER_PERMISSIONS
    assert cfg["node-private-key-file"] == besu.CONTAINER_NODE_KEY
    assert "PERM" in cfg["rpc-http-api"] and "QBFT" in cfg["rpc-http-api"]
    assert cfg["bootnodes"] == ["enode://" + "ab" * 64 + "@besu-x:30303"]
    assert cfg["Xdns-enabled"] is True
