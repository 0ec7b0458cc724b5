"""``govshare catalog …``: what categories of record each department holds,
so others know what they may ask for."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from govshare.cli._chain import admin_of, as_option, open_ledger, rpc_option
from govshare.cli.main import Ctx, common_options, echo, pass_ctx
from govshare.errors import InputError
from govshare.profile import normalise_code
from govshare.util import iso, printable


@click.group()
@common_options
def catalog() -> None:
    """The departments' catalogs of record categories."""


@catalog.command("declare")
@click.argument("category")
@click.option(
    "--description",
    default=None,
    help="What records of this category hold (required for a new category).",
)
@click.option(
    "--schema",
    type=click.Path(dir_okay=False),
    default=None,
    help="A schema file; its SHA-256 is recorded on chain.",
)
@click.option(
    "--sharing",
    type=click.Choice(["conditional", "unconditional", "none"]),
    default=None,
    help="How it is shared: conditional (an administrator decides each request; a new "
    "category's default), unconditional (the contract grants any active member's request at "
    "once), none (the contract refuses requests).",
)
@click.option(
    "--default-expires",
    default=None,
    metavar="DURATION",
    help="How long an unconditional grant lasts: 12h, 30d, 2w (default 30d).",
)
@click.option(
    "--default-max-uses",
    type=int,
    default=None,
    metavar="N",
    help="How many fetches an unconditional grant allows (default 1).",
)
@as_option
@rpc_option
@common_options
@pass_ctx
def declare_cmd(
    ctx: Ctx,
    category: str,
    description: str | None,
    schema: str | None,
    sharing: str | None,
    default_expires: str | None,
    default_max_uses: int | None,
    as_code: str,
    rpc: str | None,
) -> None:
    """Declare (or update) CATEGORY in your department's catalog, and how it is
    shared. Each change is a transaction signed with your administrator key."""
    from govshare.broker import governance

    document = None
    if schema:
        try:
            document = Path(schema).read_bytes()
        except OSError as exc:
            raise InputError(f"Cannot read the schema file {schema} ({exc.strerror}).") from None
    if description is not None:
        governance.prepare_declaration(category, description, schema=document)
    elif schema:
        raise click.UsageError("--schema goes with --description.")
    if sharing is None and (default_expires or default_max_uses is not None):
        raise click.UsageError("--default-expires and --default-max-uses go with --sharing.")
    choice = (
        governance.prepare_sharing(sharing, default_expires, default_max_uses) if sharing else None
    )
    if description is None and choice is None:
        raise click.UsageError("Say what to declare: --description, --sharing, or both.")
    ledger = open_ledger(ctx, rpc)
    governance.check_catalog_change(ledger, normalise_code(as_code), category, description, choice)
    prof, admin = admin_of(ctx, as_code)
    done = governance.declare_category(
        ledger, admin, prof.code, category, description, schema=document, sharing=choice
    )
    entry = _entry(done.category)
    verb = "declared" if description is not None else "set the sharing of"
    ctx.emit(
        {**entry, "tx_hash": done.tx_hash, "tx_hashes": [t.tx_hash for t in done.txs]},
        f"{prof.code} {verb} category '{printable(entry['category'])}': {_sharing_text(entry)}."
        + ("" if done.txs else " (Nothing changed.)"),
    )


def _sharing_text(e: dict[str, Any]) -> str:
    kind = str(e.get("sharing"))
    if kind == "unconditional":
        return (
            f"shared unconditionally, each grant for {_duration(int(e['default_ttl']))} and "
            f"{e['default_max_uses']} use(s)"
        )
    if kind == "none":
        return "not shared"
    return "shared on conditions (an administrator decides each request)"


def _sharing_cell(e: dict[str, Any]) -> str:
    if e.get("sharing") == "unconditional":
        return f"unconditional ({_duration(int(e['default_ttl']))}, {e['default_max_uses']} use(s))"
    return str(e.get("sharing"))


def _duration(seconds: int) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def _entry(c: Any) -> dict[str, Any]:
    d: dict[str, Any] = c.to_dict()
    d["declared"] = iso(c.declared_at)
    d["updated"] = iso(c.updated_at)
    return d


@catalog.command("list")
@click.option("--dept", "dept_code", default=None, help="Only this department's catalog.")
@click.option("--retired", is_flag=True, help="Include retired categories.")
@rpc_option
@common_options
@pass_ctx
def list_cmd(ctx: Ctx, dept_code: str | None, retired: bool, rpc: str | None) -> None:
    """Every department's declared categories (active ones unless --retired)."""
    ledger = open_ledger(ctx, rpc)
    codes = [normalise_code(dept_code)] if dept_code else ledger.registry.active_departments()
    if dept_code:
        ledger.registry.get_department(codes[0])  # unknown department: a clear error
    entries = [
        _entry(c) for code in codes for c in ledger.records.categories(code) if c.active or retired
    ]

    def human() -> None:
        from rich.console import Console

        from govshare.cli._render import SafeTable

        if not entries:
            echo("No categories declared.")
            return
        t = SafeTable(title="Catalog")
        for col in ["department", "category", "description", "sharing", "status", "updated"]:
            t.add_column(col)
        for e in entries:
            t.add_row(
                e["department"],
                e["category"],
                e["description"],
                _sharing_cell(e),
                "active" if e["active"] else "retired",
                e["updated"],
            )
        Console(width=200).print(t)

    ctx.emit({"categories": entries}, human)
