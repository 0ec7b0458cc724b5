"""``govshare consortium genesis|kubo|allowlists|compose``: a real consortium's network.

These commands only generate files (keys, genesis, configs); none talks to a node
except ``allowlists --rpc``, which reads the registry. They join the shared
``consortium`` group through :func:`register`.

Every file is written atomically; keys and tokens are 0600 and never printed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from govshare.cli.main import Ctx, GovShareGroup, common_options, pass_ctx
from govshare.consortium import allowlists as al
from govshare.consortium import besu, compose, kubo
from govshare.consortium._files import write_file
from govshare.errors import ConfigError, InputError
from govshare.home import deployment_path

BFT_MINIMUM = 4


def _names(names: str | None, count: int, prefix: str = "ORG") -> list[str]:
    if names:
        codes = compose.validate_orgs(names.split(","))
        if len(codes) != count:
            raise click.UsageError(f"--names lists {len(codes)} names for {count} nodes.")
        return codes
    return [f"{prefix}{i + 1}" for i in range(count)]


def _refuse_existing(paths: list[Path], force: bool) -> None:
    existing = [p for p in paths if p.exists()]
    if existing and not force:
        raise ConfigError(
            f"{existing[0]} already exists: it may hold live keys. Refusing to overwrite; "
            "pass --force to regenerate everything (the old network's keys are lost).",
            path=str(existing[0]),
        )


@click.command("genesis")
@click.option(
    "--validators", "count", type=click.IntRange(1, 64), help="Generate N validator keys."
)
@click.option(
    "--validator-key",
    "key_files",
    multiple=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Use this Besu key file (hex private key) as a validator; repeat per validator.",
)
@click.option(
    "--names",
    help="Comma-separated organisation codes, one per validator (default ORG1..ORGn).",
)
@click.option("--chain-id", type=click.IntRange(1), required=True, help="The chain id.")
@click.option(
    "--block-period", type=click.IntRange(1, 3600), default=2, show_default=True, help="Seconds."
)
@click.option(
    "--request-timeout",
    type=click.IntRange(1, 3600),
    default=None,
    help="QBFT round timeout in seconds (default: twice the block period).",
)
@click.option("--epoch-length", type=click.IntRange(1), default=besu.DEFAULT_EPOCH_LENGTH)
@click.option(
    "--account",
    "accounts",
    multiple=True,
    help="An account allowed to transact from block 0 (repeatable).",
)
@click.option(
    "--deployer/--no-deployer",
    default=True,
    show_default=True,
    help="Generate the operator's deployer key (allowlisted from block 0).",
)
@click.option(
    "--out",
    "out_dir",
    type=click.Path(file_okay=False, path_type=Path),
    required=True,
    help="Output directory.",
)
@click.option("--force", is_flag=True, help="Overwrite an existing network in --out.")
@common_options
@pass_ctx
def genesis_cmd(
    ctx: Ctx,
    count: int | None,
    key_files: tuple[Path, ...],
    names: str | None,
    chain_id: int,
    block_period: int,
    request_timeout: int | None,
    epoch_length: int,
    accounts: tuple[str, ...],
    deployer: bool,
    out_dir: Path,
    force: bool,
) -> None:
    """Validator keys, the QBFT genesis, enodes and each node's Besu config."""
    if bool(count) == bool(key_files):
        raise click.UsageError("Give either --validators N or one --validator-key per validator.")
    if key_files:
        keys = [besu.NodeKey.load(p) for p in key_files]
    else:
        assert count is not None
        keys = [besu.NodeKey.generate() for _ in range(count)]
    if len({k.address for k in keys}) != len(keys):
        raise InputError("The same validator key was given twice.")
    codes = _names(names, len(keys))
    options = besu.GenesisOptions(
        chain_id=chain_id,
        block_period_seconds=block_period,
        request_timeout_seconds=request_timeout,
        epoch_length=epoch_length,
    )
    extra_accounts = [al.normalise_account(a) for a in accounts]

    genesis_path = out_dir / "genesis.json"
    _refuse_existing([genesis_path, out_dir / "besu", out_dir / "operator"], force)

    validators = [
        besu.Validator(name=c, key=k, host=besu.besu_service_host(c))
        for c, k in zip(codes, keys, strict=True)
    ]
    deployer_key = besu.NodeKey.generate() if deployer else None
    allowed = ([deployer_key.address_hex] if deployer_key else []) + extra_accounts
    genesis = besu.build_genesis([v.key.address for v in validators], options)
    enodes = [v.enode for v in validators]

    for v in validators:
        d = out_dir / "besu" / v.name.lower()
        write_file(d / "key", v.key.key_file_text(), secret=True)
        write_file(d / "key.pub", v.key.public_key_file_text(), secret=False)
        others = [e for e in enodes if e != v.enode]
        write_file(d / "config.toml", besu.node_config_toml(bootnodes=others), secret=False)
    if deployer_key is not None:
        write_file(out_dir / "operator" / "deployer.key", deployer_key.key_file_text(), secret=True)
        write_file(
            out_dir / "operator" / "deployer.address", deployer_key.address_hex + "\n", secret=False
        )
    write_file(
        out_dir / "permissions" / "permissions_config.toml",
        al.Allowlists.build(allowed, enodes).render(),
        secret=False,
    )
    nodes_doc = {"chain_id": chain_id, "nodes": [v.public_record() for v in validators]}
    write_file(out_dir / "nodes.json", besu.render_json(nodes_doc), secret=False)
    write_file(genesis_path, besu.render_json(genesis), secret=False)

    result: dict[str, Any] = {
        "out": str(out_dir),
        "chain_id": chain_id,
        "genesis": str(genesis_path),
        "extra_data": genesis["extraData"],
        "validators": nodes_doc["nodes"],
        "deployer": deployer_key.address_hex if deployer_key else None,
        "warnings": [],
    }
    if len(validators) < BFT_MINIMUM:
        result["warnings"].append(
            f"{len(validators)} validator(s) tolerate no faulty node; QBFT needs "
            f"{BFT_MINIMUM} to tolerate one."
        )

    def human() -> None:
        click.echo(f"QBFT genesis for chain {chain_id} written to {genesis_path}")
        for v in validators:
            click.echo(f"  {v.name:<10} {v.key.address_hex}  {v.enode}")
        if deployer_key:
            click.echo(f"Deployer account {deployer_key.address_hex} (key in operator/, 0600)")
        for w in result["warnings"]:
            click.echo(f"Warning: {w}", err=True)

    ctx.emit(result, human)


@click.command("kubo")
@click.option("--nodes", "count", type=click.IntRange(1, 64), help="Number of Kubo nodes.")
@click.option("--names", help="Comma-separated organisation codes (default ORG1..ORGn).")
@click.option(
    "--out",
    "out_dir",
    type=click.Path(file_okay=False, path_type=Path),
    required=True,
    help="Output directory (files go to OUT/kubo/).",
)
@click.option("--force", is_flag=True, help="Overwrite an existing swarm in --out.")
@common_options
@pass_ctx
def kubo_cmd(ctx: Ctx, count: int | None, names: str | None, out_dir: Path, force: bool) -> None:
    """The private swarm: swarm key, peer identities, API tokens, per-node Kubo config."""
    if count is None and not names:
        raise click.UsageError("Give --nodes N or --names A,B,C.")
    n = count if count is not None else len(compose.validate_orgs((names or "").split(",")))
    codes = _names(names, n)
    base = out_dir / "kubo"
    _refuse_existing([base / "swarm.key"], force)

    nodes = [
        kubo.KuboNode(name=c, identity=kubo.PeerIdentity.generate(), host=kubo.kubo_service_host(c))
        for c in codes
    ]
    write_file(base / "swarm.key", kubo.format_swarm_key(kubo.generate_swarm_key()), secret=True)
    for node in nodes:
        d = base / node.name.lower()
        fragment = kubo.config_fragment(node, nodes)
        write_file(d / kubo.SECRET_IDENTITY, node.identity.kubo_privkey, secret=True)
        write_file(d / kubo.SECRET_API_TOKEN, kubo.generate_api_token(), secret=True)
        write_file(d / "config.json", besu.render_json(fragment), secret=False)
        write_file(
            d / "container-init.d" / "010-govshare-private-swarm.sh",
            kubo.init_script(node, fragment),
            secret=False,
            executable=True,
        )
    peers = {"nodes": [nd.public_record() for nd in nodes], "rpc_paths": list(kubo.KUBO_RPC_PATHS)}
    write_file(base / "peers.json", besu.render_json(peers), secret=False)

    def human() -> None:
        click.echo(f"Private swarm for {len(nodes)} Kubo nodes written to {base}")
        for nd in nodes:
            click.echo(f"  {nd.name:<10} {nd.multiaddr}")
        click.echo("swarm.key, identities and API tokens are 0600; share swarm.key only by hand.")

    ctx.emit({"out": str(base), **peers}, human)


def _registry_accounts(rpc: str, deployment: Path) -> list[str]:
    """Active departments' broker and admin accounts, from ConsortiumRegistry.activeAccounts()."""
    from govshare.chain import Ledger  # the chain layer is only needed for --rpc

    ledger = Ledger.from_deployment(deployment, rpc_url=rpc)
    return [str(a) for a in ledger.registry.active_accounts()]


@click.command("allowlists")
@click.option("--rpc", help="A node's JSON-RPC URL: read the active accounts from the registry.")
@click.option(
    "--deployment",
    "deployment_file",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="The deployment file naming the contracts (default: HOME/deployment.json).",
)
@click.option(
    "--nodes",
    "nodes_file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="nodes.json from `consortium genesis` (default: beside --out's directory).",
)
@click.option(
    "--account",
    "accounts",
    multiple=True,
    help="Also allow this account (repeatable), e.g. the operator's deployer.",
)
@click.option(
    "--out",
    "out_file",
    type=click.Path(dir_okay=False, path_type=Path),
    required=True,
    help="The permissions_config.toml to write.",
)
@common_options
@pass_ctx
def allowlists_cmd(
    ctx: Ctx,
    rpc: str | None,
    deployment_file: Path | None,
    nodes_file: Path | None,
    accounts: tuple[str, ...],
    out_file: Path,
) -> None:
    """Besu's permissions_config.toml from the registry (accounts) and nodes.json (enodes)."""
    if nodes_file is None:
        nodes_file = out_file.parent.parent / "nodes.json"
    enodes = al.load_node_enodes(nodes_file)
    chain_accounts: list[str] = []
    if rpc:
        chain_accounts = _registry_accounts(rpc, deployment_file or deployment_path(ctx.home))
    lists = al.Allowlists.build([*chain_accounts, *accounts], enodes)
    if not lists.accounts:
        raise InputError(
            "No account would be allowed to transact; give --rpc (registry) or --account."
        )
    write_file(out_file, lists.render(), secret=False)
    result = {"out": str(out_file), "accounts": list(lists.accounts), "nodes": list(lists.nodes)}
    ctx.emit(
        result,
        f"Wrote {out_file}: {len(lists.accounts)} account(s), {len(lists.nodes)} node(s). "
        "Reload on every validator with the PERM API: perm_reloadPermissionsFromFile.",
    )


@click.command("compose")
@click.option(
    "--orgs",
    default=",".join(compose.DEFAULT_ORGS),
    show_default=True,
    help="Comma-separated organisation codes (four or more for fault tolerance).",
)
@click.option(
    "--out",
    "out_file",
    type=click.Path(dir_okay=False, path_type=Path),
    required=True,
    help="The compose file to write.",
)
@click.option(
    "--docker-dir",
    default=".",
    show_default=True,
    help="Path from the compose file's directory to the repository's docker/ directory.",
)
@click.option(
    "--generated-dir",
    default=None,
    help="Path from the compose file's directory to the generated files "
    "(default: DOCKER_DIR/generated).",
)
@common_options
@pass_ctx
def compose_cmd(
    ctx: Ctx, orgs: str, out_file: Path, docker_dir: str, generated_dir: str | None
) -> None:
    """The Docker Compose file for N organisations (validators, swarm, brokers)."""
    codes = compose.validate_orgs(orgs.split(","))
    text = compose.render_compose(codes, base=docker_dir, generated=generated_dir)
    write_file(out_file, text, secret=False)
    warn = len(codes) < BFT_MINIMUM
    ctx.emit(
        {"out": str(out_file), "orgs": codes, "fault_tolerant": not warn},
        f"Wrote {out_file} for {', '.join(codes)}"
        + (" (fewer than 4 organisations: no fault tolerance)" if warn else ""),
    )


COMMANDS = (genesis_cmd, kubo_cmd, allowlists_cmd, compose_cmd)


def register(group: click.Group) -> click.Group:
    """Add ``genesis``, ``kubo``, ``allowlists`` and ``compose`` to ``group``."""
    for cmd in COMMANDS:
        group.add_command(cmd)
    return group


@click.group(cls=GovShareGroup, context_settings={"help_option_names": ["-h", "--help"]})
def standalone() -> None:
    """The consortium network generators on their own (``python -m govshare.cli.net``)."""


register(standalone)


def main() -> None:  # pragma: no cover - exercised by scripts/consortium_up.sh
    standalone(prog_name="python -m govshare.cli.net")


if __name__ == "__main__":  # pragma: no cover
    main()
