"""``govshare serve --dept CODE``: run one department's broker.

Unlocks the department's broker key and HPKE key (one password: ``--password-file``,
``$GOVSHARE_PASSWORD``, ``$GOVSHARE_PASSWORD_FILE`` or a prompt), opens its
database (``HOME/depts/CODE/broker.db``, migrated), its blob store (``local:``
under ``HOME/depts/CODE/blobs`` unless ``--store``), and the ledger of the
deployment file; then its runtime (:class:`~govshare.broker.runtime.BrokerRuntime`)
resumes the operations a previous run left unfinished, removes a crash's
leftovers, and starts the outbox worker, the chain follower and the receipt
batcher (anchors this department's exchange receipts, ``--receipt-batch-size`` /
``--receipt-batch-age``); and serves the API with uvicorn.

Environment (the docker compose file sets these): ``GOVSHARE_DEPT``,
``GOVSHARE_DEPLOYMENT_FILE``, ``GOVSHARE_CHAIN_URL`` (or ``GOVSHARE_RPC``),
``GOVSHARE_STORAGE`` (or ``GOVSHARE_STORE``), ``GOVSHARE_SECRETS_DIR`` (a
directory holding the profile and keys instead of ``HOME/depts/CODE``, and
optionally the password in ``broker.password``).
"""

from __future__ import annotations

import logging
import re
import time
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlparse

import click

from govshare.cli.main import Ctx, common_options, pass_ctx

if TYPE_CHECKING:
    from govshare.broker.services import BrokerServices
    from govshare.chain.ledger import Ledger

DEFAULT_PORT = 8443
#: In ``--profile-dir`` (a container's secrets mount): the broker key's password.
PASSWORD_FILE = "broker.password"  # noqa: S105 - a file name
_SIZE = re.compile(r"^\s*(\d+)\s*([KMG]i?B?|B)?\s*$", re.IGNORECASE)
_UNITS = {"": 1, "b": 1, "k": 1024, "m": 1024**2, "g": 1024**3}

log = logging.getLogger("govshare.serve")


def parse_size(text: str) -> int:
    """``"256MiB"``, ``"1G"``, ``"4096"`` → bytes."""
    m = _SIZE.match(text or "")
    if not m or int(m.group(1)) <= 0:
        raise click.BadParameter(f"{text!r} is not a size (e.g. 256MiB, 1GiB, 4096).")
    unit = (m.group(2) or "").lower()[:1]
    return int(m.group(1)) * _UNITS[unit]


def _connect(deployment: Path, rpc: str | None, wait: float) -> Ledger:
    """The ledger, waiting up to ``wait`` seconds for the chain node to answer."""
    from govshare.chain.ledger import Ledger as _Ledger
    from govshare.errors import ChainUnavailable

    deadline = time.monotonic() + wait
    while True:
        try:
            return _Ledger.from_deployment(deployment, rpc)
        except ChainUnavailable:
            if time.monotonic() >= deadline:
                raise
            click.echo("Waiting for the chain node to answer...", err=True)
            time.sleep(2.0)


@click.command("serve")
@click.option(
    "--dept",
    envvar="GOVSHARE_DEPT",
    required=True,
    metavar="CODE",
    help="The department whose broker this is (env GOVSHARE_DEPT).",
)
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option(
    "--port",
    type=int,
    default=None,
    help=f"Port (default: the port of the profile's endpoint, else {DEFAULT_PORT}).",
)
@click.option(
    "--store",
    "store_url",
    envvar=["GOVSHARE_STORAGE", "GOVSHARE_STORE"],
    default=None,
    help="Blob store URL (default local: under the department's folder).",
)
@click.option(
    "--rpc",
    envvar=["GOVSHARE_CHAIN_URL", "GOVSHARE_RPC"],
    default=None,
    help="Chain JSON-RPC URL (default: the deployment file's).",
)
@click.option(
    "--deployment",
    "deployment_file",
    envvar="GOVSHARE_DEPLOYMENT_FILE",
    type=click.Path(dir_okay=False),
    default=None,
    help="Deployment file (default HOME/deployment.json).",
)
@click.option(
    "--profile-dir",
    envvar="GOVSHARE_SECRETS_DIR",
    type=click.Path(file_okay=False),
    default=None,
    help="Read the profile and keys from this folder instead of HOME/depts/CODE.",
)
@click.option(
    "--password-file",
    type=click.Path(dir_okay=False),
    default=None,
    help="Read the broker key password from this file.",
)
@click.option(
    "--max-upload",
    default="256MiB",
    show_default=True,
    help="Largest record accepted for publishing.",
)
@click.option(
    "--wait-chain",
    type=float,
    default=30.0,
    show_default=True,
    help="Seconds to wait for the chain node at start-up.",
)
@click.option(
    "--log-level",
    default="info",
    show_default=True,
    type=click.Choice(["debug", "info", "warning", "error"]),
)
@click.option(
    "--receipt-batch-size",
    envvar="GOVSHARE_RECEIPT_BATCH_SIZE",
    type=click.IntRange(1, 10_000),
    default=256,
    show_default=True,
    help="Anchor receipts as soon as this many wait (and at most this many per batch).",
)
@click.option(
    "--receipt-batch-age",
    envvar="GOVSHARE_RECEIPT_BATCH_AGE",
    type=click.FloatRange(0),
    default=30.0,
    show_default=True,
    help="Anchor waiting receipts once the oldest has waited this many seconds.",
)
@click.option(
    "--tls-cert",
    envvar="GOVSHARE_TLS_CERT",
    type=click.Path(exists=True, dir_okay=False),
    default=None,
    help="Serve HTTPS with this PEM certificate (chain); needs --tls-key.",
)
@click.option(
    "--tls-key",
    envvar="GOVSHARE_TLS_KEY",
    type=click.Path(exists=True, dir_okay=False),
    default=None,
    help="The PEM private key of --tls-cert.",
)
@click.option("--worker-interval", type=float, default=2.0, hidden=True)
@click.option("--sync-interval", type=float, default=5.0, hidden=True)
@common_options
@pass_ctx
def serve(
    ctx: Ctx,
    dept: str,
    host: str,
    port: int | None,
    store_url: str | None,
    rpc: str | None,
    deployment_file: str | None,
    profile_dir: str | None,
    password_file: str | None,
    max_upload: str,
    wait_chain: float,
    log_level: str,
    receipt_batch_size: int,
    receipt_batch_age: float,
    tls_cert: str | None,
    tls_key: str | None,
    worker_interval: float,
    sync_interval: float,
) -> None:
    """Run department CODE's broker: its clerks' API and its peers' exchange."""
    import uvicorn

    if bool(tls_cert) != bool(tls_key):
        raise click.UsageError("HTTPS needs both --tls-cert and --tls-key.")

    from govshare.api import ApiDeps, ApiSettings, create_app
    from govshare.api.logs import log_config
    from govshare.broker.db import Database
    from govshare.broker.runtime import BrokerRuntime, RuntimeSettings
    from govshare.broker.services import BrokerServices, Limits
    from govshare.broker.subjects import load_subject_key
    from govshare.crypto import resolve_password
    from govshare.home import deployment_path, dept_dir
    from govshare.profile import load_profile, load_profile_dir, normalise_code
    from govshare.storage import open_store

    limit = parse_size(max_upload)
    home = ctx.home
    code = normalise_code(dept)
    if profile_dir and (Path(profile_dir) / "config.json").is_file():
        profile = load_profile_dir(Path(profile_dir))
    else:
        profile = load_profile(home, code)
    if profile.code != code:
        raise click.UsageError(f"The profile in {profile.dir} is {profile.code}'s, not {code}'s.")
    if password_file is None and profile_dir and not _password_in_env():
        # a container's secrets mount may carry the password beside the keys
        candidate = Path(profile_dir) / PASSWORD_FILE
        if candidate.is_file():
            password_file = str(candidate)
    password = resolve_password(
        None, password_file=password_file, prompt=f"Password for {code}'s broker key: "
    )
    account = profile.unlock_broker(password)
    hpke = profile.unlock_hpke(password)
    subject_key = load_subject_key(profile.dir)

    deployment = Path(deployment_file) if deployment_file else deployment_path(home)
    ledger = _connect(deployment, rpc, wait_chain)
    folder = dept_dir(home, code)
    store = open_store(store_url or f"local:{folder / 'blobs'}", home=home)
    db = Database.for_department(home, code)
    svc = BrokerServices(
        dept=code,
        db=db,
        ledger=ledger,
        store=store,
        account=account,
        hpke=hpke,
        subject_key=subject_key,
        spool=folder / "spool",
        limits=Limits(max_upload=limit),
    )
    runtime = BrokerRuntime(
        svc,
        RuntimeSettings(
            worker_interval=worker_interval,
            sync_interval=sync_interval,
            receipt_batch_size=receipt_batch_size,
            receipt_batch_age=receipt_batch_age,
        ),
    )
    try:
        warning = _registration_warning(svc, profile.hpke_public_key)
        if warning:
            click.echo(f"Warning: {warning}", err=True)
        startup = runtime.start()
        app = create_app(ApiSettings(department=code), ApiDeps.from_services(svc))
        listen = port or _endpoint_port(profile.endpoint) or DEFAULT_PORT
        scheme = "https" if tls_cert else "http"
        click.echo(
            f"{code}'s broker: {scheme}://{host}:{listen} (chain {ledger.url}, store {store!r}, "
            f"{startup.resumed} operation(s) resumed). Ctrl-C stops it.",
            err=True,
        )
        uvicorn.run(
            app,
            host=host,
            port=listen,
            log_config=log_config(log_level.upper()),
            server_header=False,
            timeout_graceful_shutdown=10,
            ssl_certfile=tls_cert,
            ssl_keyfile=tls_key,
        )
    finally:
        runtime.stop()
        ledger.close()


def _password_in_env() -> bool:
    import os

    from govshare.crypto import ENV_PASSWORD, ENV_PASSWORD_FILE

    return bool(os.environ.get(ENV_PASSWORD) or os.environ.get(ENV_PASSWORD_FILE))


def _endpoint_port(endpoint: str) -> int | None:
    try:
        return urlparse(endpoint).port
    except ValueError:
        return None


def _registration_warning(svc: BrokerServices, hpke_public: bytes) -> str | None:
    """A sentence when the registry does not (yet) hold this broker's keys."""
    from govshare.errors import GovShareError

    try:
        if svc.dept not in svc.ledger.registry.all_departments():
            return f"{svc.dept} is not a member of the consortium yet; peers cannot reach it."
        entry = svc.ledger.registry.get_department(svc.dept)
    except GovShareError as exc:
        return f"could not read {svc.dept}'s registry entry ({exc.code})."
    if entry.broker.lower() != svc.account.address.lower():
        return (
            f"the registry's broker account for {svc.dept} is {entry.broker}, not this "
            f"key's {svc.account.address}: anchoring and exchanges will be refused."
        )
    if bytes(entry.encryption_key) != hpke_public:
        return (
            f"the registry's encryption key for {svc.dept} is not this HPKE key: "
            "capsules from peers will not open."
        )
    if not entry.active:
        return f"{svc.dept} is {entry.status.value} in the registry."
    return None
