"""``govshare catalog …``: what categories of record each department holds,
so others know what they may ask for."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click
from rich.console import Console

from govshare.broker import governance
from govshare.cli._chain import admin_of, as_option, open_ledger, rpc_option
from govshare.cli._render import SafeTable
from govshare.cli.main import Ctx, common_options, pass_ctx
from govshare.errors import InputError
from govshare.profile import normalise_code
from govshare.util import iso


@click.group()
@common_options
def catalog() -> None:
    """The departments' catalogs of record categories."""


@catalog.command("declare")
@click.argument("category")
@click.option("--description", required=True, help="What records of this category hold.")
@click.option(
    "--schema",
    type=click.Path(dir_okay=False),
    default=None,
    help="A schema file; its SHA-256 is recorded on chain.",
)
@as_option
@rpc_option
@common_options
@pass_ctx
def declare_cmd(
    ctx: Ctx, category: str, description: str, schema: str | None, as_code: str, rpc: str | None
) -> None:
    """Declare (or update) CATEGORY in your department's catalog."""
    document = None
    if schema:
        try:
            document = Path(schema).read_bytes()
        except OSError as exc:
            raise InputError(f"Cannot read the schema file {schema} ({exc.strerror}).") from None
    governance.prepare_declaration(category, description, schema=document)
    ledger = open_ledger(ctx, rpc)
    prof, admin = admin_of(ctx, as_code)
    done = governance.declare_category(
        ledger, admin, prof.code, category, description, schema=document
    )
    entry = _entry(done.category)
    ctx.emit(
        {**entry, "tx_hash": done.tx_hash}, f"{prof.code} declared category '{entry['category']}'."
    )


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
        if not entries:
            click.echo("No categories declared.")
            return
        t = SafeTable(title="Catalog")
        for col in ["department", "category", "description", "active", "updated"]:
            t.add_column(col)
        for e in entries:
            t.add_row(
                e["department"], e["category"], e["description"], str(e["active"]), e["updated"]
            )
        Console(width=200).print(t)

    ctx.emit({"categories": entries}, human)
