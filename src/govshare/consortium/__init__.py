"""Generated configuration for a real consortium: Besu QBFT validators and a private
Kubo swarm (pure generation, no network).

- :mod:`govshare.consortium.besu`: node keys, QBFT genesis and ``extraData``, enodes,
  per-node Besu config.
- :mod:`govshare.consortium.allowlists`: Besu's ``permissions_config.toml``.
- :mod:`govshare.consortium.kubo`: swarm key, libp2p peer identities, Kubo config.
- :mod:`govshare.consortium.compose`: the Docker Compose file for N organisations.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from govshare._lazy import lazy_exports

if TYPE_CHECKING:
    from govshare.consortium.allowlists import Allowlists, render_permissions_config
    from govshare.consortium.besu import (
        QBFT_MIX_HASH,
        GenesisOptions,
        NodeKey,
        build_genesis,
        encode_qbft_extra_data,
        genesis_extra_data,
    )
    from govshare.consortium.kubo import PeerIdentity, format_swarm_key, parse_swarm_key

# Each name is imported from its module when first used (PEP 562): the CLI's
# network commands import `govshare.consortium._files` without the key code.
_WHERE: dict[str, str] = {
    "Allowlists": "govshare.consortium.allowlists",
    "GenesisOptions": "govshare.consortium.besu",
    "NodeKey": "govshare.consortium.besu",
    "PeerIdentity": "govshare.consortium.kubo",
    "QBFT_MIX_HASH": "govshare.consortium.besu",
    "build_genesis": "govshare.consortium.besu",
    "encode_qbft_extra_data": "govshare.consortium.besu",
    "format_swarm_key": "govshare.consortium.kubo",
    "genesis_extra_data": "govshare.consortium.besu",
    "parse_swarm_key": "govshare.consortium.kubo",
    "render_permissions_config": "govshare.consortium.allowlists",
}

__all__ = [
    "QBFT_MIX_HASH",
    "Allowlists",
    "GenesisOptions",
    "NodeKey",
    "PeerIdentity",
    "build_genesis",
    "encode_qbft_extra_data",
    "format_swarm_key",
    "genesis_extra_data",
    "parse_swarm_key",
    "render_permissions_config",
]


__getattr__, __dir__ = lazy_exports(__name__, _WHERE, __all__)
