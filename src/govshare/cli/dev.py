"""``govshare dev …``: the one-machine development consortium.

``dev chain start|stop|status`` runs the local anvil whose ledger persists
under the govshare home.
"""

from __future__ import annotations

import click

from govshare.chain.devnode import DEFAULT_PORT, DevChain
from govshare.cli.main import Ctx, common_options, pass_ctx
from govshare.home import chain_dir, ensure_dir


@click.group()
@common_options
def dev() -> None:
    """The local development consortium (one machine)."""


@dev.group()
@common_options
def chain() -> None:
    """The local dev chain (anvil), its ledger kept under the govshare home."""


def _devchain(ctx: Ctx, port: int | None = None) -> DevChain:
    d = chain_dir(ctx.home)
    return DevChain(d, port=port) if port else DevChain(d)


@chain.command("start")
@click.option(
    "--port",
    type=click.IntRange(1, 65535),
    default=None,
    help=f"RPC port on 127.0.0.1 (default {DEFAULT_PORT}; remembered).",
)
@common_options
@pass_ctx
def chain_start(ctx: Ctx, port: int | None) -> None:
    """Start the local chain (no-op if it is already running)."""
    ensure_dir(ctx.home)
    dc = _devchain(ctx, port)
    if port and dc.port != port and dc.status().running:
        raise click.UsageError(f"The dev chain already runs on port {dc.port}; stop it first.")
    if port:
        dc.port = port
    was_running = dc.status().running
    st = dc.start()
    ctx.emit(
        {**st.to_dict(), "already_running": was_running},
        f"Dev chain {'already running' if was_running else 'started'} at {st.url} "
        f"(chain id {st.chain_id}, block {st.block}); ledger kept in {st.state_file}",
    )


@chain.command("stop")
@common_options
@pass_ctx
def chain_stop(ctx: Ctx) -> None:
    """Stop the local chain; its ledger is saved and reloaded by the next start."""
    dc = _devchain(ctx)
    stopped = dc.stop()
    ctx.emit(
        {"stopped": stopped, "url": dc.url},
        "Dev chain stopped; ledger saved." if stopped else "Dev chain was not running.",
    )


@chain.command("status")
@common_options
@pass_ctx
def chain_status(ctx: Ctx) -> None:
    """Show whether the local chain runs, where, and its latest block."""
    st = _devchain(ctx).status()
    human = (
        f"Dev chain running at {st.url} (pid {st.pid}, chain id {st.chain_id}, block {st.block})"
        if st.running
        else f"Dev chain not running (would listen on {st.url})"
    )
    ctx.emit(st.to_dict(), human)
