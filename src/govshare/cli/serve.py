"""``govshare serve --dept CODE``: run one department's broker.

Unlocks the department's broker key and HPKE key (one password: ``--password-file``,
``GOVSHARE_PASSWORD``, ``GOVSHARE_PASSWORD_FILE`` or a prompt), opens its
database (``HOME/depts/CODE/broker.db``, migrated), its blob store (``local:``
under ``HOME/depts/CODE/blobs`` unless ``--store``), and the ledger of the
deployment file; then its runtime (:class:`~govshare.broker.runtime.BrokerRuntime`)
resumes the operations a previous run left unfinished, removes a crash's
leftovers, and starts the outbox worker, the chain follower and the receipt
batcher (anchors this department's exchange receipts, ``--receipt-batch-size`` /
``--receipt-batch-age``); and serves the API with uvicorn.

Every option is a setting (``docs/settings.md``): ``--rpc`` is ``GOVSHARE_RPC``,
``--store`` ``GOVSHARE_STORE``, ``--profile-dir`` ``GOVSHARE_SECRETS_DIR`` (a
directory holding the profile and keys instead of ``HOME/depts/CODE``, and
optionally the password in ``broker.password``), and so on. The flags given on
the command line override the environment; the broker is built from the one
resulting :class:`~govshare.settings.Settings`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlparse

import click
from click.core import ParameterSource

from govshare.cli.main import Ctx, common_options, echo, pass_ctx

if TYPE_CHECKING:
    from types import FrameType

    from govshare.broker.services import BrokerServices
    from govshare.chain.ledger import Ledger
    from govshare.settings import Settings

DEFAULT_PORT = 8443
#: In ``--profile-dir`` (a container's secrets mount): the broker key's password.
PASSWORD_FILE = "broker.password"  # noqa: S105 - a file name

# Each flag → the setting it overrides (the rest share the flag's name).
_FLAG_SETTING = {
    "store_url": "store",
    "deployment_file": "deployment_file",
    "profile_dir": "secrets_dir",
}

log = logging.getLogger("govshare.serve")


def parse_size(text: str) -> int:
    """``"256MiB"``, ``"1G"``, ``"4096"`` → bytes."""
    from govshare.util import parse_size as _parse

    try:
        return _parse(text)
    except ValueError as exc:
        raise click.BadParameter(f"{exc}.") from None


def _size(_ctx: click.Context, _param: click.Parameter, value: str | None) -> int | None:
    return None if value is None else parse_size(value)


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
            echo("Waiting for the chain node to answer...", err=True)
            time.sleep(2.0)


@click.command("serve")
@click.option(
    "--dept",
    default=None,
    metavar="CODE",
    help="The department whose broker this is (env GOVSHARE_DEPT).",
)
@click.option(
    "--host",
    default=None,
    show_default="127.0.0.1",
    help="Address to listen on (env GOVSHARE_HOST).",
)
@click.option(
    "--port",
    type=click.IntRange(1, 65535),
    default=None,
    help=f"Port (env GOVSHARE_PORT; default: the port of the profile's endpoint, else "
    f"{DEFAULT_PORT}).",
)
@click.option(
    "--store",
    "store_url",
    default=None,
    help="Blob store URL (env GOVSHARE_STORE; default local: under the department's folder).",
)
@click.option(
    "--database",
    "database_url",
    default=None,
    help="The broker's database URL: sqlite:///PATH or postgresql+psycopg://USER:PASSWORD@"
    "HOST:PORT/DB (env GOVSHARE_DATABASE_URL; default HOME/depts/CODE/broker.db).",
)
@click.option(
    "--rpc",
    default=None,
    help="Chain JSON-RPC URL (env GOVSHARE_RPC; default: the deployment file's).",
)
@click.option(
    "--deployment",
    "deployment_file",
    type=click.Path(dir_okay=False),
    default=None,
    help="Deployment file (env GOVSHARE_DEPLOYMENT_FILE; default HOME/deployment.json).",
)
@click.option(
    "--profile-dir",
    type=click.Path(file_okay=False),
    default=None,
    help="Read the profile and keys from this folder instead of HOME/depts/CODE "
    "(env GOVSHARE_SECRETS_DIR).",
)
@click.option(
    "--password-file",
    type=click.Path(dir_okay=False),
    default=None,
    help="Read the broker key password from this file (wins over GOVSHARE_PASSWORD).",
)
@click.option(
    "--max-upload",
    default=None,
    callback=_size,
    show_default="256MiB",
    help="Largest record accepted for publishing (env GOVSHARE_MAX_UPLOAD).",
)
@click.option(
    "--wait-chain",
    type=click.FloatRange(0),
    default=None,
    show_default="30",
    help="Seconds to wait for the chain node at start-up (env GOVSHARE_WAIT_CHAIN).",
)
@click.option(
    "--log-level",
    default=None,
    show_default="info",
    type=click.Choice(["debug", "info", "warning", "error"]),
    help="Env GOVSHARE_LOG_LEVEL.",
)
@click.option(
    "--receipt-batch-size",
    type=click.IntRange(1, 10_000),
    default=None,
    show_default="256",
    help="Anchor receipts as soon as this many wait (and at most this many per batch).",
)
@click.option(
    "--receipt-batch-age",
    type=click.FloatRange(0),
    default=None,
    show_default="30",
    help="Anchor waiting receipts once the oldest has waited this many seconds.",
)
@click.option(
    "--tls-cert",
    type=click.Path(exists=True, dir_okay=False),
    default=None,
    help="Serve HTTPS with this PEM certificate (chain); needs --tls-key (env GOVSHARE_TLS_CERT).",
)
@click.option(
    "--tls-key",
    type=click.Path(exists=True, dir_okay=False),
    default=None,
    help="The PEM private key of --tls-cert (env GOVSHARE_TLS_KEY).",
)
@click.option("--worker-interval", type=float, default=None, hidden=True)
@click.option("--sync-interval", type=float, default=None, hidden=True)
@common_options
@pass_ctx
def serve(ctx: Ctx, /, **flags: Any) -> None:
    """Run department CODE's broker: its clerks' API and its peers' exchange."""
    run_broker(ctx.home, _settings_with_flags(ctx.settings, flags))


def _settings_with_flags(settings: Settings, flags: dict[str, Any]) -> Settings:
    """``settings`` with the flags given on the command line in place (a flag wins)."""
    click_ctx = click.get_current_context()
    given = {
        _FLAG_SETTING.get(name, name): value
        for name, value in flags.items()
        if click_ctx.get_parameter_source(name) is ParameterSource.COMMANDLINE
    }
    if "password_file" in given:  # the most specific source: above GOVSHARE_PASSWORD
        given["password"] = None
    return settings.with_overrides(**given)


def run_broker(home: Path, settings: Settings) -> None:
    """Run one department's broker from ``settings`` until it is stopped."""
    import uvicorn

    if not settings.dept:
        raise click.UsageError("Missing option '--dept' (or GOVSHARE_DEPT).")
    if bool(settings.tls_cert) != bool(settings.tls_key):
        raise click.UsageError("HTTPS needs both --tls-cert and --tls-key.")

    from govshare.api import ApiDeps, ApiSettings, create_app
    from govshare.api.logs import log_config
    from govshare.audit.sources import broker_sources
    from govshare.broker import faults
    from govshare.broker.db import Database
    from govshare.broker.notifications import NotifySettings
    from govshare.broker.runtime import BrokerRuntime, RuntimeSettings
    from govshare.broker.services import BrokerServices, Limits
    from govshare.broker.subjects import load_subject_key
    from govshare.crypto import resolve_password
    from govshare.home import deployment_path, dept_dir
    from govshare.profile import load_profile, load_profile_dir, normalise_code
    from govshare.settings import Passwords
    from govshare.storage import open_store

    code = normalise_code(settings.dept)
    profile_dir = settings.secrets_dir
    if profile_dir and (profile_dir / "config.json").is_file():
        profile = load_profile_dir(profile_dir)
    else:
        profile = load_profile(home, code)
    if profile.code != code:
        raise click.UsageError(f"The profile in {profile.dir} is {profile.code}'s, not {code}'s.")
    passwords = settings.passwords()
    if passwords.broker is None and passwords.broker_file is None and profile_dir:
        # a container's secrets mount may carry the password beside the keys
        candidate = profile_dir / PASSWORD_FILE
        if candidate.is_file():
            passwords = Passwords(broker_file=candidate)

    password = resolve_password(
        None,
        configured=passwords.broker,
        configured_file=passwords.broker_file,
        prompt=f"Password for {code}'s broker key: ",
        option="--password-file",
    )
    account = profile.unlock_broker(password)
    hpke = profile.unlock_hpke(password)
    retired_hpke = profile.unlock_retired_hpke(password)  # capsules from before a rotation
    subject_key = load_subject_key(
        profile.dir, key=settings.secret("subject_key"), key_file=settings.subject_key_file
    )

    deployment = settings.deployment_file or deployment_path(home)
    ledger = _connect(deployment, settings.rpc, settings.wait_chain)
    folder = dept_dir(home, code)
    store = open_store(
        settings.store or f"local:{folder / 'blobs'}",
        home=home,
        token=settings.secret("kubo_token"),
    )
    db = Database.for_department(home, code, settings.secret("database_url"))
    svc = BrokerServices(
        dept=code,
        db=db,
        ledger=ledger,
        store=store,
        account=account,
        hpke=hpke,
        retired_hpke=retired_hpke,
        subject_key=subject_key,
        spool=folder / "spool",
        limits=Limits(
            max_upload=settings.max_upload,
            batch_max_records=settings.batch_max_records,
            batch_window=settings.batch_window,
            publish_wait=settings.publish_wait,
            resume_window=settings.exchange_resume_window,
        ),
        manifest_sources=broker_sources(
            store,
            code,
            urls=settings.manifest_sources,
            home=home,
            store_url=settings.store,
            token=settings.secret("audit_token"),
            kubo_token=settings.secret("kubo_token"),
        ),
        notify=NotifySettings.from_settings(settings),
    )
    faults.arm(settings.test_crash_at if settings.testing else None)
    faults.arm_cuts(settings.test_cut_at if settings.testing else None)
    runtime = BrokerRuntime(svc, RuntimeSettings.from_settings(settings))
    try:
        warning = _registration_warning(svc, profile.hpke_public_key)
        if warning:
            echo(f"Warning: {warning}", err=True)
        startup = runtime.start()
        app = create_app(ApiSettings.from_settings(code, settings), ApiDeps.from_services(svc))
        listen = settings.port or _endpoint_port(profile.endpoint) or DEFAULT_PORT
        scheme = "https" if settings.tls_cert else "http"
        echo(
            f"{code}'s broker: {scheme}://{settings.host}:{listen} (chain {ledger.url}, "
            f"store {store!r}, {startup.resumed} operation(s) resumed). Ctrl-C stops it.",
            err=True,
        )
        config = uvicorn.Config(
            app,
            host=settings.host,
            port=listen,
            log_config=log_config(settings.log_level.upper()),
            server_header=False,
            timeout_graceful_shutdown=10,
            ssl_certfile=settings.tls_cert,
            ssl_keyfile=settings.tls_key,
        )
        _server(config, on_exit=svc.notifications.close).run()
    finally:
        runtime.stop()
        ledger.close()


def _server_class() -> type[Any]:
    import uvicorn

    class Server(uvicorn.Server):
        """uvicorn, ending the open event streams as soon as it is asked to stop:
        its graceful shutdown waits for open responses, and a stream never ends
        by itself."""

        def __init__(self, config: uvicorn.Config, *, on_exit: Callable[[], None]) -> None:
            super().__init__(config)
            self._on_exit = on_exit

        def handle_exit(self, sig: int, frame: FrameType | None) -> None:
            self._on_exit()
            super().handle_exit(sig, frame)

    return Server


def _server(config: Any, *, on_exit: Callable[[], None]) -> Any:
    """A uvicorn server for ``config`` that calls ``on_exit`` when asked to stop."""
    return _server_class()(config, on_exit=on_exit)


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
