"""``govshare consortium genesis|kubo|allowlists|compose|add-node|reload-allowlists|
vote-validator``: a real consortium's network.

Most of these only generate files (keys, genesis, configs). ``allowlists --rpc``
reads the registry; ``reload-allowlists`` and ``vote-validator`` call the
validators' ``PERM`` and ``QBFT`` APIs. They join the shared ``consortium`` group
through :func:`register`.

Every file is written atomically; keys and tokens are 0600 and never printed.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from govshare.cli.main import Ctx, GovShareGroup, common_options, echo, pass_ctx
from govshare.consortium._files import write_file
from govshare.errors import ConfigError, InputError
from govshare.home import deployment_path

if TYPE_CHECKING:
    from govshare.consortium import nodeapi

BFT_MINIMUM = 4
# The generators (coincurve, eth-utils, httpx) are imported when a command runs;
# the defaults shown in --help are repeated here (a test checks they agree).
EPOCH_LENGTH = 30000  # besu.DEFAULT_EPOCH_LENGTH
DEFAULT_ORGS = ("TAX", "MARKET", "HEALTH", "TRANSPORT")  # compose.DEFAULT_ORGS


def _names(names: str | None, count: int, prefix: str = "ORG") -> list[str]:
    from govshare.consortium import compose

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
@click.option("--epoch-length", type=click.IntRange(1), default=EPOCH_LENGTH)
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
def genesis_cmd(  # noqa: C901 — a command script: validate flags, then write files
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
    from govshare.consortium import allowlists as al
    from govshare.consortium import besu

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
        echo(f"QBFT genesis for chain {chain_id} written to {genesis_path}")
        for v in validators:
            echo(f"  {v.name:<10} {v.key.address_hex}  {v.enode}")
        if deployer_key:
            echo(f"Deployer account {deployer_key.address_hex} (key in operator/, 0600)")
        for w in result["warnings"]:
            echo(f"Warning: {w}", err=True)

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
    from govshare.consortium import besu, compose, kubo

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
        echo(f"Private swarm for {len(nodes)} Kubo nodes written to {base}")
        for nd in nodes:
            echo(f"  {nd.name:<10} {nd.multiaddr}")
        echo("swarm.key, identities and API tokens are 0600; share swarm.key only by hand.")

    ctx.emit({"out": str(base), **peers}, human)


def _registry_accounts(rpc: str, deployment: Path) -> list[str]:
    """Active departments' broker and admin accounts, from ConsortiumRegistry.activeAccounts()."""
    from govshare.chain import Ledger  # the chain layer is only needed for --rpc

    with Ledger.from_deployment(deployment, rpc_url=rpc) as ledger:
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
    from govshare.consortium import allowlists as al

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
    default=",".join(DEFAULT_ORGS),
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
    from govshare.consortium import compose

    codes = compose.validate_orgs(orgs.split(","))
    text = compose.render_compose(codes, base=docker_dir, generated=generated_dir)
    write_file(out_file, text, secret=False)
    warn = len(codes) < BFT_MINIMUM
    ctx.emit(
        {"out": str(out_file), "orgs": codes, "fault_tolerant": not warn},
        f"Wrote {out_file} for {', '.join(codes)}"
        + (" (fewer than 4 organisations: no fault tolerance)" if warn else ""),
    )


def _read_json_doc(path: Path, what: str) -> dict[str, Any]:
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{path} does not exist: {what}.", path=str(path)) from None
    except (OSError, ValueError) as exc:
        raise InputError(f"Cannot read {path} ({type(exc).__name__}).", path=str(path)) from None
    if not isinstance(doc, dict) or not isinstance(doc.get("nodes"), list):
        raise InputError(f"{path} has no 'nodes' list.", path=str(path))
    return doc


def _refuse_overwrite(path: Path) -> None:
    if path.exists():
        raise ConfigError(
            f"{path} already exists: it may be a live key. Move it away to add this node anew.",
            path=str(path),
        )


@click.command("add-node")
@click.option("--name", "name", required=True, help="The new organisation's code, e.g. COURT.")
@click.option(
    "--validator-key",
    "key_file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="The new validator's Besu key file (default: generate one).",
)
@click.option(
    "--out",
    "out_dir",
    type=click.Path(file_okay=False, path_type=Path),
    required=True,
    help="The directory `consortium genesis` (and `kubo`) wrote.",
)
@common_options
@pass_ctx
def add_node_cmd(ctx: Ctx, name: str, key_file: Path | None, out_dir: Path) -> None:  # noqa: C901 — a command script: refuse clashes, then write files
    """Add one organisation's validator (and Kubo node) to an existing network's files.

    Writes its node key, Besu config and (when OUT has a swarm) its Kubo identity, token
    and config; appends it to nodes.json and kubo/peers.json; rewrites the other nodes'
    public config (bootnodes, swarm peering) to include it. The genesis is not touched:
    the new validator syncs from block 0 and joins the validator set by vote
    (`consortium vote-validator`).
    """
    from govshare.consortium import allowlists as al
    from govshare.consortium import besu, compose, kubo

    (code,) = compose.validate_orgs([name])
    nodes_path = out_dir / "nodes.json"
    nodes_doc = _read_json_doc(nodes_path, "run `govshare consortium genesis` first")
    records = [r for r in nodes_doc["nodes"] if isinstance(r, dict)]
    if any(str(r.get("name", "")).upper() == code for r in records):
        raise InputError(f"{code} is already a node of this network ({nodes_path}).")
    besu_dir = out_dir / "besu" / code.lower()
    _refuse_overwrite(besu_dir / "key")
    key = besu.NodeKey.load(key_file) if key_file else besu.NodeKey.generate()
    if any(str(r.get("address", "")).lower() == key.address_hex for r in records):
        raise InputError("That validator key is already a node of this network.")
    # The swarm (when OUT has one) is checked before anything is written.
    base = out_dir / "kubo"
    peers_path = base / "peers.json"
    peers_doc: dict[str, Any] | None = None
    peers: list[kubo.KuboPeer] = []
    if peers_path.is_file():
        peers_doc = _read_json_doc(peers_path, "run `govshare consortium kubo` first")
        peers = [kubo.KuboPeer.from_record(r) for r in peers_doc["nodes"]]
        if any(p.name.upper() == code for p in peers):
            raise InputError(f"{code} is already a node of the swarm ({peers_path}).")
        _refuse_overwrite(base / code.lower() / kubo.SECRET_IDENTITY)
    validator = besu.Validator(name=code, key=key, host=besu.besu_service_host(code))
    records.append(validator.public_record())
    enodes = [*al.load_node_enodes(nodes_path), validator.enode]

    write_file(besu_dir / "key", key.key_file_text(), secret=True)
    write_file(besu_dir / "key.pub", key.public_key_file_text(), secret=False)
    for rec in records:  # every node we hold the config of bootstraps to all the others
        cfg = out_dir / "besu" / str(rec["name"]).lower() / "config.toml"
        if cfg.parent.is_dir():
            others = [e for e in enodes if e != rec["enode"]]
            write_file(cfg, besu.node_config_toml(bootnodes=others), secret=False)
    nodes_doc["nodes"] = records
    write_file(nodes_path, besu.render_json(nodes_doc), secret=False)
    result: dict[str, Any] = {"validator": validator.public_record(), "kubo": None}

    if peers_doc is not None:
        node = kubo.KuboNode(
            name=code, identity=kubo.PeerIdentity.generate(), host=kubo.kubo_service_host(code)
        )
        d = base / code.lower()
        write_file(d / kubo.SECRET_IDENTITY, node.identity.kubo_privkey, secret=True)
        write_file(d / kubo.SECRET_API_TOKEN, kubo.generate_api_token(), secret=True)
        members = [*peers, node.peer]
        for member in members:
            md = base / member.name.lower()
            if not md.is_dir():
                continue  # another organisation's machine holds that node's files
            fragment = kubo.config_fragment(member, members)
            write_file(md / "config.json", besu.render_json(fragment), secret=False)
            write_file(
                md / "container-init.d" / "010-govshare-private-swarm.sh",
                kubo.init_script(member, fragment),
                secret=False,
                executable=True,
            )
        peers_doc["nodes"] = [m.public_record() for m in members]
        write_file(peers_path, besu.render_json(peers_doc), secret=False)
        result["kubo"] = node.public_record()

    def human() -> None:

        echo(f"Added {code} to {out_dir}:")
        echo(f"  validator {validator.key.address_hex}  {validator.enode}")
        if result["kubo"]:
            echo(f"  kubo      {result['kubo']['multiaddr']}")
        echo(
            "Next: admit the department on chain, regenerate and reload the allowlists, "
            "then vote its validator in (docs/consortium.md, 'Add a fifth department')."
        )

    ctx.emit(result, human)


def _report(results: list[nodeapi.NodeResult]) -> list[dict[str, Any]]:
    return [{"url": r.url, "ok": r.ok, "detail": r.detail} for r in results]


@click.command("reload-allowlists")
@click.option(
    "--rpc",
    "rpcs",
    multiple=True,
    required=True,
    help="A validator's JSON-RPC URL (repeat for every validator).",
)
@common_options
@pass_ctx
def reload_allowlists_cmd(ctx: Ctx, rpcs: tuple[str, ...]) -> None:
    """Make every validator reread permissions_config.toml (perm_reloadPermissionsFromFile)."""
    from govshare.consortium import nodeapi

    results = nodeapi.reload_allowlists(rpcs)
    failed = [r for r in results if not r.ok]

    def human() -> None:
        for r in results:
            echo(f"  {'ok ' if r.ok else 'FAILED'} {r.url}: {r.detail}")

    ctx.emit({"nodes": _report(results), "ok": not failed}, human)
    if failed:
        raise ConfigError(f"{len(failed)} of {len(results)} validator(s) did not reload.")


@click.command("vote-validator")
@click.argument("address")
@click.option("--remove", is_flag=True, help="Vote the validator out instead of in.")
@click.option(
    "--rpc",
    "rpcs",
    multiple=True,
    required=True,
    help="A current validator's JSON-RPC URL; repeat for more than half of them.",
)
@click.option(
    "--wait",
    type=click.FloatRange(0),
    default=120.0,
    show_default=True,
    help="Seconds to wait for the validator set to change.",
)
@common_options
@pass_ctx
def vote_validator_cmd(
    ctx: Ctx, address: str, remove: bool, rpcs: tuple[str, ...], wait: float
) -> None:
    """Vote ADDRESS into (or out of) the QBFT validator set on each validator given,
    wait for the set to change, then discard the votes (Besu's documented sequence)."""
    from govshare.consortium import nodeapi

    outcome = nodeapi.vote_validator(address, not remove, rpcs, wait=wait)
    data = {
        "address": outcome.address,
        "add": outcome.add,
        "done": outcome.done,
        "votes": _report(outcome.votes),
        "discarded": _report(outcome.discarded),
        "validators_before": outcome.validators_before,
        "validators": outcome.validators_after,
    }
    verb = "joined" if outcome.add else "left"
    ctx.emit(
        data,
        f"{outcome.address} {verb} the validator set ({len(outcome.validators_after)} validators)."
        if outcome.done
        else f"{outcome.address} has not {verb} the validator set within {wait:g}s.",
    )
    if not outcome.done:
        raise ConfigError(
            f"The vote on {outcome.address} did not take effect within {wait:g}s; the "
            "proposals stay pending (check the votes above, then run this again)."
        )


COMMANDS = (
    genesis_cmd,
    kubo_cmd,
    allowlists_cmd,
    compose_cmd,
    add_node_cmd,
    reload_allowlists_cmd,
    vote_validator_cmd,
)


def register(group: click.Group) -> click.Group:
    """Add the network commands (``genesis``, ``kubo``, ``allowlists``, ``compose``,
    ``add-node``, ``reload-allowlists``, ``vote-validator``) to ``group``."""

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
