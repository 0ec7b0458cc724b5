"""``govshare dev …``: the one-machine development consortium.

``dev up|down|status`` run a whole consortium on this machine (chain, contracts,
departments, one broker process each; see :mod:`govshare.cli.devnet`).
``dev chain start|stop|status`` run the local anvil alone, its ledger kept
under the govshare home.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import click

from govshare.chain.devnode import DEFAULT_PORT, DevChain
from govshare.cli.main import Ctx, common_options, echo, pass_ctx
from govshare.home import chain_dir, ensure_dir
from govshare.util import format_size, parse_size

if TYPE_CHECKING:
    from govshare.cli.devnet import DevNetStatus

# govshare.cli.devnet (profiles, HTTP) is imported by the commands that use it, so
# `govshare dev chain status` stays quick.


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
    anvil = ctx.settings.anvil
    return DevChain(d, port=port, anvil=anvil) if port else DevChain(d, anvil=anvil)


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


# -- the whole local consortium -------------------------------------------------------------


def _size(_ctx: click.Context, _param: click.Parameter, value: str | None) -> int | None:
    if value is None:
        return None
    try:
        return parse_size(value)
    except ValueError as exc:
        raise click.BadParameter(f"{exc}.") from None


def _print_status(st: DevNetStatus, *, verb: str) -> None:
    echo(f"Local consortium {verb} (home {st.home})")
    chain_state = f"running at {st.chain.url}" if st.chain.running else "stopped"
    echo(f"  chain     {chain_state}" + (f", block {st.chain.block}" if st.chain.running else ""))
    if not st.deployed:
        echo("  ledger    not deployed (run `govshare dev up`)")
    if st.database == "postgresql":
        echo(f"  postgres  {'running' if st.postgres_running else 'stopped'}")
    for code, (url, running) in st.kubo.items():
        echo(f"  kubo {code:<4} {url}  {'running' if running else 'stopped'}")
    for code, why in st.not_started.items():
        echo(f"  {code:<9} not started {why}")
    for b in st.brokers:
        if b.running:
            health = "ready" if b.ready else "running, not ready (chain or store unreachable?)"
            echo(f"  {b.code:<9} {b.url}  pid {b.pid}, {health}")
        else:
            echo(f"  {b.code:<9} {b.url}  stopped")
    if st.brokers:
        echo(
            f"  uploads   at most {format_size(st.max_upload)} per record "
            "(dev up --max-upload, after dev down)"
        )
        echo(f"  tokens    {st.home}/depts/CODE/api.token (clerk), api-admin.token (admin)")
        echo(f"  logs      {Path(st.brokers[0].log).parent}")


@dev.command("up")
@click.option(
    "--departments",
    default=None,
    help="Comma-separated department codes (default TAX,MARKET,COURT; "
    "on an existing home: the ones it has).",
)
@click.option(
    "--password-file",
    type=click.Path(exists=True, dir_okay=False),
    default=None,
    help="Read the broker key password from this file (else $GOVSHARE_PASSWORD or a prompt).",
)
@click.option(
    "--chain-port",
    type=click.IntRange(1, 65535),
    default=None,
    help=f"Port of the local chain (default {DEFAULT_PORT}; remembered).",
)
@click.option(
    "--base-port",
    type=click.IntRange(1024, 65000),
    default=None,
    help="First port tried for new departments' brokers (default 8701).",
)
@click.option(
    "--store",
    type=click.Choice(["local", "kubo"]),
    default=None,
    help="Where the brokers keep the encrypted records: a folder each (local, the default), "
    "or a Kubo node each, in one private swarm (kubo; `make setup` builds Kubo). Chosen at "
    "the first dev up of a home.",
)
@click.option(
    "--database",
    type=click.Choice(["sqlite", "postgresql"]),
    default=None,
    help="Where the brokers keep their databases: a SQLite file each (the default), or a "
    "database each in a private PostgreSQL cluster of this home. Chosen at the first dev up.",
)
@click.option(
    "--max-upload",
    default=None,
    callback=_size,
    help="Largest record each broker accepts for publishing, e.g. 2GiB (default 256MiB, "
    "or GOVSHARE_MAX_UPLOAD; kept for the next dev up; running brokers keep theirs until "
    "dev down).",
)
@click.option("--wait", type=float, default=90.0, hidden=True, help="Seconds to wait for brokers.")
@click.option("--scrypt-n", type=int, default=None, hidden=True, help="Keystore cost (tests).")
@common_options
@pass_ctx
def up(
    ctx: Ctx,
    departments: str | None,
    password_file: str | None,
    chain_port: int | None,
    base_port: int | None,
    store: str | None,
    database: str | None,
    max_upload: int | None,
    wait: float,
    scrypt_n: int | None,
) -> None:
    """Start a consortium on this machine: chain, contracts, departments (keys,
    a clerk and an administrator each), one broker process per department.

    Run it again on the same home to resume it with its data: nothing is
    deployed or generated twice. Stop everything with `govshare dev down`.
    """
    from govshare.cli.devnet import DevNet, category_for
    from govshare.cli.init_cmd import FIRST_BROKER_PORT
    from govshare.crypto import resolve_password
    from govshare.profile import list_codes

    codes = [c for c in (s.strip() for s in departments.split(",")) if c] if departments else None
    fresh = not list_codes(ctx.home)
    passwords = ctx.settings.passwords()
    password = resolve_password(
        None,
        confirm=fresh,
        password_file=password_file,
        configured=passwords.broker,
        configured_file=passwords.broker_file,
        prompt="Broker key password: " if not fresh else "New broker key password: ",
        option="--password-file",
    )
    admin_password = passwords.admin

    def progress(line: str) -> None:
        if not ctx.json_out:
            echo(line, err=True)

    st = DevNet(ctx.home, ctx.settings).up(
        codes,
        password=password,
        admin_password=admin_password,
        chain_port=chain_port,
        base_port=base_port or FIRST_BROKER_PORT,
        scrypt_n=scrypt_n,
        wait=wait,
        store=store,
        database=database,
        max_upload=max_upload,
        echo=progress,
    )

    def human() -> None:
        _print_status(st, verb="resumed" if st.resumed else "up")
        first = st.brokers[0].code if st.brokers else "TAX"
        echo(
            "\nTry, as a clerk (the token is read from the file above):\n"
            f"  govshare record publish FILE --category {category_for(first)[0]} --dept {first}\n"
            f"  govshare record list --dept {first}\n"
            "  govshare dev status        govshare dev down"
        )

    ctx.emit(st.to_dict(), human)


@dev.command("down")
@common_options
@pass_ctx
def down(ctx: Ctx) -> None:
    """Stop this home's brokers, its Kubo nodes if any, then its chain (everything
    is kept for `dev up`)."""
    from govshare.cli.devnet import DevNet

    out = DevNet(ctx.home, ctx.settings).down()
    human = (
        f"Stopped the brokers of {', '.join(out['brokers_stopped']) or 'no department'}; "
        + (f"the Kubo nodes of {', '.join(out['kubo_stopped'])}; " if out["kubo_stopped"] else "")
        + ("the PostgreSQL cluster; " if out["postgres_stopped"] else "")
        + (
            "the chain stopped, its ledger saved."
            if out["chain_stopped"]
            else "the chain was not running."
        )
    )
    ctx.emit(out, human)


@dev.command("status")
@common_options
@pass_ctx
def status(ctx: Ctx) -> None:
    """Show the chain and each department's broker of this home."""
    from govshare.cli.devnet import DevNet

    st = DevNet(ctx.home, ctx.settings).status()
    ctx.emit(st.to_dict(), lambda: _print_status(st, verb="status"))
