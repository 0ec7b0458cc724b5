"""Generated configuration for a real consortium: Besu QBFT validators and a private
Kubo swarm (pure generation, no network).

- :mod:`govshare.consortium.besu`: node keys, QBFT genesis and ``extraData``, enodes,
  per-node Besu config.
- :mod:`govshare.consortium.allowlists`: Besu's ``permissions_config.toml``.
- :mod:`govshare.consortium.kubo`: swarm key, libp2p peer identities, Kubo config.
- :mod:`govshare.consortium.compose`: the Docker Compose file for N organisations.
"""

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
