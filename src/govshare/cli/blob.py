"""``govshare blob``: put files into the blob store and get them back, by CID.

The store is the local one under the govshare home unless ``--store`` (or the
``store`` setting, ``GOVSHARE_STORE``) names another, e.g.
``kubo:http://127.0.0.1:5001`` (token: the ``kubo_token`` setting,
``GOVSHARE_KUBO_TOKEN``). CIDs are the ones ``ipfs add`` gives.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, BinaryIO

import click

from govshare.cli._output import atomic_output, check_output
from govshare.cli.main import Ctx, common_options, from_settings, pass_ctx
from govshare.errors import InputError

# The storage backends (httpx for Kubo) are imported when a command runs.
if TYPE_CHECKING:
    from govshare.storage import BlobStore

store_option = click.option(
    "--store",
    "store_url",
    metavar="URL",
    default=from_settings("store"),
    help="local:PATH or kubo:http://HOST:5001 (env GOVSHARE_STORE; default: local store "
    "under the home).",
)


def _open(ctx: Ctx, url: str | None) -> BlobStore:
    from govshare.storage import open_store

    return open_store(url, home=ctx.home, token=ctx.settings.secret("kubo_token"))


def _open_input(path: str) -> BinaryIO:
    try:
        return open(path, "rb")
    except FileNotFoundError:
        raise InputError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise InputError(f"{path} is a directory; give a file") from None
    except OSError as exc:
        raise InputError(f"cannot read {path}: {exc.strerror}") from None


@click.group("blob")
@common_options
def blob() -> None:
    """Store and fetch files by CID (local store or Kubo)."""


@blob.command("add")
@click.argument("file")
@click.option(
    "--cid-version",
    type=click.Choice(["0", "1"]),
    default="0",
    show_default=True,
    help="0: Qm… (dag-pb leaves); 1: bafy…/bafk… (raw leaves).",
)
@click.option("--no-pin", is_flag=True, help="Do not pin (gc may remove it).")
@store_option
@common_options
@pass_ctx
def add_cmd(ctx: Ctx, file: str, cid_version: str, no_pin: bool, store_url: str | None) -> None:
    """Add FILE; print its CID."""
    store = _open(ctx, store_url)
    try:
        with _open_input(file) as fh:
            cid = store.put(fh, cid_version=int(cid_version), pin=not no_pin)
        size = os.path.getsize(file)
    finally:
        store.close()
    ctx.emit({"cid": str(cid), "size": size, "pinned": not no_pin}, str(cid))


@blob.command("get")
@click.argument("cid")
@click.option("-o", "--output", required=True, metavar="FILE", help="Where to write the file.")
@click.option("--force", is_flag=True, help="Replace the output file if it exists.")
@store_option
@common_options
@pass_ctx
def get_cmd(ctx: Ctx, cid: str, output: str, force: bool, store_url: str | None) -> None:
    """Write the file CID to FILE (only once every block has verified)."""
    from govshare.storage import parse_cid

    parsed = parse_cid(cid)
    target = check_output(output, force=force)
    store = _open(ctx, store_url)
    size = 0
    try:
        with atomic_output(target) as fh:
            for chunk in store.get(parsed):
                fh.write(chunk)
                size += len(chunk)
    finally:
        store.close()
    ctx.emit({"cid": str(parsed), "size": size, "output": str(target)}, f"{size} bytes → {target}")


@blob.command("stat")
@click.argument("cid")
@store_option
@common_options
@pass_ctx
def stat_cmd(ctx: Ctx, cid: str, store_url: str | None) -> None:
    """Size and codec of a stored file."""
    from govshare.storage import parse_cid

    parsed = parse_cid(cid)
    store = _open(ctx, store_url)
    try:
        st = store.stat(parsed)
    finally:
        store.close()
    pinned = "" if st.pinned is None else (", pinned" if st.pinned else ", not pinned")
    ctx.emit(st.to_dict(), f"{st.cid}  {st.size} bytes  {st.codec}{pinned}")


@blob.command("pin")
@click.argument("cid")
@store_option
@common_options
@pass_ctx
def pin_cmd(ctx: Ctx, cid: str, store_url: str | None) -> None:
    """Pin CID (the whole DAG must be present)."""
    from govshare.storage import PIN, parse_cid, require

    parsed = parse_cid(cid)
    store = _open(ctx, store_url)
    try:
        require(store, PIN)
        store.pin(parsed)
    finally:
        store.close()
    ctx.emit({"cid": str(parsed), "pinned": True}, f"pinned {parsed}")


@blob.command("unpin")
@click.argument("cid")
@store_option
@common_options
@pass_ctx
def unpin_cmd(ctx: Ctx, cid: str, store_url: str | None) -> None:
    """Unpin CID (gc may then remove it)."""
    from govshare.storage import PIN, parse_cid, require

    parsed = parse_cid(cid)
    store = _open(ctx, store_url)
    try:
        require(store, PIN)
        store.unpin(parsed)
    finally:
        store.close()
    ctx.emit({"cid": str(parsed), "pinned": False}, f"unpinned {parsed}")


@blob.command("export")
@click.argument("cid")
@click.option("-o", "--output", required=True, metavar="FILE.car", help="CAR file to write.")
@click.option("--force", is_flag=True, help="Replace the output file if it exists.")
@store_option
@common_options
@pass_ctx
def export_cmd(ctx: Ctx, cid: str, output: str, force: bool, store_url: str | None) -> None:
    """Export the DAG of CID as a CARv1 (like ``ipfs dag export``)."""
    from govshare.storage import CAR, parse_cid, require

    parsed = parse_cid(cid)
    target = check_output(output, force=force)
    store = _open(ctx, store_url)
    try:
        require(store, CAR)
        with atomic_output(target) as fh:
            blocks = store.export_car(parsed, fh)
    finally:
        store.close()
    ctx.emit(
        {"cid": str(parsed), "blocks": blocks, "output": str(target)},
        f"{blocks} blocks → {target}",
    )


@blob.command("import")
@click.argument("file")
@click.option("--no-pin", is_flag=True, help="Do not pin the CAR's roots.")
@store_option
@common_options
@pass_ctx
def import_cmd(ctx: Ctx, file: str, no_pin: bool, store_url: str | None) -> None:
    """Import a CARv1 (like ``ipfs dag import``); every block is verified."""
    from govshare.storage import CAR, require

    store = _open(ctx, store_url)
    try:
        require(store, CAR)
        with _open_input(file) as fh:
            result = store.import_car(fh, pin_roots=not no_pin)
    finally:
        store.close()
    roots = [str(r) for r in result.roots]
    ctx.emit({"roots": roots, "blocks": result.blocks}, "\n".join(roots))


@blob.command("gc")
@store_option
@common_options
@pass_ctx
def gc_cmd(ctx: Ctx, store_url: str | None) -> None:
    """Remove blocks that no pin reaches."""
    from govshare.storage import GC, require

    store = _open(ctx, store_url)
    try:
        require(store, GC)
        report = store.gc()
    finally:
        store.close()
    ctx.emit(
        report.to_dict(),
        f"removed {len(report.removed)} blocks ({report.freed_bytes} bytes)",
    )
