"""``govshare consortium …``: deploy the contracts; generate a real network's files.

``deploy`` lives here; ``genesis``, ``kubo``, ``allowlists`` and ``compose``
come from :mod:`govshare.cli.net`.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING

import click

from govshare.cli import net
from govshare.cli.main import Ctx, common_options, from_settings, pass_ctx
from govshare.errors import ConfigError, InputError
from govshare.home import chain_dir, deployment_path
from govshare.profile import load_profile
from govshare.util import MAX_PROPOSAL_LIFETIME, parse_duration

# The chain stack and the keys' code are imported when a command runs.
if TYPE_CHECKING:
    from eth_account.signers.local import LocalAccount

    from govshare.chain.connection import Connection
    from govshare.chain.contracts import DepartmentInit
    from govshare.settings import Passwords


@click.group()
@common_options
def consortium() -> None:
    """Deploy the consortium's contracts and generate its network configuration."""


def _founder_inits(ctx: Ctx, founders: str) -> list[DepartmentInit]:
    """``TAX,MARKET`` (profiles in this home) or a JSON file of public entries."""
    path = Path(founders)
    if founders.endswith(".json") or path.is_file():
        try:
            entries = json.loads(path.read_text())
        except FileNotFoundError:
            raise InputError(f"The founders file {founders} does not exist.") from None
        except ValueError:
            raise InputError(f"The founders file {founders} is not valid JSON.") from None
        if isinstance(entries, dict) and "departments" in entries:
            entries = entries["departments"]
        if not isinstance(entries, list) or not entries:
            raise InputError(f"The founders file {founders} must hold a non-empty JSON list.")
        return [_init_from_public(e, founders) for e in entries]
    codes = [c for c in (s.strip() for s in founders.split(",")) if c]
    if not codes:
        raise InputError("Name at least one founding department (--founders TAX,MARKET).")
    if len({c.upper() for c in codes}) != len(codes):
        raise InputError("A department is listed twice in --founders.")
    inits = []
    for code in codes:
        p = load_profile(ctx.home, code)
        inits.append(_init_from_public(p.public_info(), code))
    return inits


def _init_from_public(e: object, where: str) -> DepartmentInit:
    from govshare.chain.contracts import DepartmentInit

    if not isinstance(e, dict):
        raise InputError(f"{where}: each founder must be an object.")
    try:
        key = str(e["hpke_public_key"]).removeprefix("0x")
        return DepartmentInit(
            code=str(e["code"]).upper(),
            name=str(e["name"]),
            broker=str(e["broker"]),
            admins=tuple(str(a) for a in e["admins"]),
            encryption_key=bytes.fromhex(key),
            endpoint=str(e["endpoint"]),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise InputError(
            f"{where}: a founder entry is incomplete or malformed ({exc!s}); it needs code, "
            "name, broker, admins, hpke_public_key and endpoint (as `govshare init --json` "
            "prints)."
        ) from None


def _deployer(
    key_file: str | None, keystore: str | None, conn: Connection, passwords: Passwords
) -> LocalAccount:
    from govshare.chain.devfund import faucet, is_dev_chain
    from govshare.crypto import load_eth_keystore, resolve_password
    from govshare.crypto.keys import local_account

    if key_file and keystore:
        raise click.UsageError("Pass --key-file or --deployer-keystore, not both.")
    if keystore:
        pw = resolve_password(
            None,
            configured=passwords.broker,
            configured_file=passwords.broker_file,
            prompt="Password for the deployer keystore: ",
        )
        return load_eth_keystore(keystore, pw).account()
    if key_file:
        try:
            raw = Path(key_file).read_text().strip()
            acct = local_account(raw)
        except OSError as exc:
            raise InputError(f"The key file {key_file} cannot be read ({exc.strerror}).") from None
        except (ValueError, TypeError):
            raise InputError(f"The key file {key_file} does not hold a hex private key.") from None
        return acct
    if is_dev_chain(conn):
        return faucet()
    raise click.UsageError(
        "This is not the local dev chain: say which account pays for deployment with "
        "--deployer-keystore FILE or --key-file FILE."
    )


@consortium.command("deploy")
@click.option(
    "--rpc",
    default=from_settings("rpc"),
    help="Chain JSON-RPC URL (default: the local dev chain of this home).",
)
@click.option(
    "--founders",
    required=True,
    help="Founding departments: codes of profiles in this home (TAX,MARKET,COURT) "
    "or a JSON file of their public entries.",
)
@click.option(
    "--threshold",
    type=int,
    required=True,
    help="Approvals (from distinct active departments) a proposal needs.",
)
@click.option(
    "--proposal-lifetime",
    default=None,
    help="How long a proposal stays open, e.g. 7d, 12h (default 7d, at most 365d).",
)
@click.option(
    "--supervisor",
    "supervisors",
    multiple=True,
    help="Supervisor account (escalations go to them); repeatable.",
)
@click.option(
    "--key-file",
    type=click.Path(dir_okay=False),
    default=None,
    help="File holding the deployer's hex private key (it only pays for gas).",
)
@click.option(
    "--deployer-keystore",
    type=click.Path(dir_okay=False),
    default=None,
    help="v3 keystore of the deployer account.",
)
@click.option(
    "--out",
    type=click.Path(dir_okay=False),
    default=None,
    help="Where to write the deployment file (default HOME/deployment.json).",
)
@click.option("--force", is_flag=True, help="Replace an existing deployment file.")
@common_options
@pass_ctx
def deploy_cmd(
    ctx: Ctx,
    rpc: str | None,
    founders: str,
    threshold: int,
    proposal_lifetime: str | None,
    supervisors: tuple[str, ...],
    key_file: str | None,
    deployer_keystore: str | None,
    out: str | None,
    force: bool,
) -> None:
    """Deploy the three contracts, wired together, with the founders registered."""
    from govshare.chain.connection import Connection
    from govshare.chain.deploy import DEFAULT_PROPOSAL_LIFETIME, deploy
    from govshare.chain.devfund import fund_if_dev
    from govshare.chain.devnode import DevChain
    from govshare.chain.tx import Sender

    out_path = Path(out) if out else deployment_path(ctx.home)
    if out_path.exists() and not force:
        raise ConfigError(
            f"A deployment file already exists at {out_path}; every command of this home uses "
            "it. Pass --force to deploy a new consortium and replace it."
        )
    lifetime = (
        parse_duration(proposal_lifetime, MAX_PROPOSAL_LIFETIME, what="proposal lifetime")
        if proposal_lifetime
        else None
    )
    inits = _founder_inits(ctx, founders)
    if rpc is None:
        dc = DevChain(chain_dir(ctx.home), anvil=ctx.settings.anvil)
        if not dc.status().running:
            raise ConfigError(
                "No --rpc given and the local dev chain is not running: start it with "
                "`govshare dev chain start`, or pass --rpc URL."
            )
        rpc = dc.url
    conn = Connection(rpc)
    deployer = _deployer(key_file, deployer_keystore, conn, ctx.settings.passwords())
    sender = Sender(conn)
    funded = fund_if_dev(conn, sender, [a for i in inits for a in (i.broker, *i.admins)])
    dep = deploy(
        conn,
        deployer,
        inits,
        threshold,
        proposal_lifetime=lifetime or DEFAULT_PROPOSAL_LIFETIME,
        supervisors=supervisors,
        path=out_path,
    )
    os.chmod(out_path, 0o644)
    data = {
        **dep.to_dict(),
        "path": str(out_path),
        "founders": [i.code for i in inits],
        "threshold": threshold,
        "funded": funded,
    }
    ctx.emit(
        data,
        f"Consortium deployed on chain {dep.chain_id} at block {dep.deploy_block}\n"
        + "".join(f"  {name:<20} {addr}\n" for name, addr in dep.addresses.items())
        + f"  founders  {', '.join(i.code for i in inits)} (threshold {threshold})\n"
        + f"Deployment file: {out_path}",
    )


net.register(consortium)
