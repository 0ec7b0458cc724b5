"""Decoding govshare logs into :class:`Event` (shared by receipts and the indexer)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from eth_abi.exceptions import DecodingError

from govshare.chain.abi import Artifact, EventCodec, checksum
from govshare.chain.tx import Event


def _hexbytes(value: Any) -> bytes:
    if isinstance(value, bytes | bytearray):
        return bytes(value)
    text = str(value)
    return bytes.fromhex(text[2:] if text.startswith("0x") else text)


def _int(value: Any) -> int:
    return value if isinstance(value, int) else int(str(value), 16)


class LogDecoder:
    """Decodes logs emitted by known govshare contract addresses; others → None."""

    def __init__(self, contracts: Mapping[str, Artifact]) -> None:
        """``contracts``: address → the artifact deployed there."""
        self.by_address: dict[str, tuple[str, dict[bytes, EventCodec]]] = {
            addr.lower(): (art.name, art.events) for addr, art in contracts.items()
        }

    def codec(self, log: Mapping[str, Any]) -> tuple[str, EventCodec] | None:
        entry = self.by_address.get(str(log["address"]).lower())
        topics = log.get("topics") or []
        if entry is None or not topics:
            return None
        name, events = entry
        codec = events.get(_hexbytes(topics[0]))
        return (name, codec) if codec is not None else None

    def __call__(self, log: Mapping[str, Any]) -> Event | None:
        found = self.codec(log)
        if found is None:
            return None
        contract, codec = found
        topics = [_hexbytes(t) for t in log["topics"]]
        try:
            args = codec.decode(topics, _hexbytes(log.get("data") or "0x"))
        except (DecodingError, ValueError):
            return None
        return Event(
            contract=contract,
            name=codec.name,
            args=args,
            address=checksum(str(log["address"])),
            block_number=_int(log["blockNumber"]),
            tx_hash=str(log["transactionHash"]),
            log_index=_int(log["logIndex"]),
        )
