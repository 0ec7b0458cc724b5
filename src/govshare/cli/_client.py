"""What the clerk commands share: the department's broker API over HTTP, called
with a user's bearer token.

The broker is found at the endpoint of the department's profile (``--broker`` /
the ``broker_url`` setting override it). The token comes from ``--token``, else
the ``token`` setting (``GOVSHARE_TOKEN``), else the file ``govshare login`` (or
``govshare dev up``) saved for the department: ``HOME/depts/CODE/api.token`` (0600).

An answer in ``application/problem+json`` becomes the registered error class of
its ``code`` (:func:`govshare.errors.from_problem`), keeping the broker's code,
sentence and details; a broker that cannot be reached becomes
:class:`BrokerUnreachable`. The root command prints either as one sentence (or
as JSON with ``--json``).
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from govshare.broker.errors import AuthError, InvalidToken
from govshare.cli.main import Ctx, from_settings
from govshare.errors import ConfigError, GovShareError, InputError, from_problem
from govshare.home import dept_dir
from govshare.profile import load_profile, normalise_code

# httpx is imported when a broker is called: every clerk command's --help loads
# this module.
if TYPE_CHECKING:
    import httpx

F = TypeVar("F", bound=Callable[..., Any])

ENV_TOKEN = "GOVSHARE_TOKEN"  # noqa: S105 - a variable's name
TOKEN_FILE = "api.token"  # noqa: S105 - a file name
ADMIN_TOKEN_FILE = "api-admin.token"  # noqa: S105 - a file name
RECORD_ID = re.compile(r"^0x[0-9a-fA-F]{64}$")
# Publishing waits for encryption, storage and the anchor's block; a fetch for the
# owner's broker. Connecting is quick or not at all.
TIMEOUT_SECONDS = 300.0
CONNECT_TIMEOUT_SECONDS = 5.0


class BrokerUnreachable(GovShareError):
    """The broker did not answer (not running, wrong URL, or died mid-way)."""

    code = "cli.broker_unreachable"
    status = 503
    remedy = "Start the broker (`govshare dev up` / `govshare serve`) or fix --broker."


class TokenMissing(ConfigError):
    """No API token for the department: none given, none saved."""

    code = "cli.token_missing"
    status = 401
    remedy = "Run `govshare login --dept CODE`, or pass --token / set GOVSHARE_TOKEN."


def token_path(home: Path, code: str, name: str = TOKEN_FILE) -> Path:
    return dept_dir(home, code) / name


def save_token(home: Path, code: str, token: str, name: str = TOKEN_FILE) -> Path:
    """Write a token file (0600, atomically): the CLI's remembered login."""
    path = token_path(home, code, name)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(token.strip() + "\n")
    os.replace(tmp, path)
    return path


def check_record_id(value: str) -> str:
    if not RECORD_ID.match(value or ""):
        raise InputError(f"'{value}' is not a record id: 0x followed by 64 hex digits.")
    return value.lower()


def broker_options(f: F) -> F:
    """``--dept`` (whose broker, whose token), ``--token``, ``--broker``."""
    f = click.option(
        "--broker",
        "broker_url",
        default=from_settings("broker_url"),
        metavar="URL",
        help="Broker URL (env GOVSHARE_BROKER_URL; default: the department profile's endpoint).",
    )(f)
    f = click.option(
        "--token",
        default=from_settings("token"),
        help="Your API token (env GOVSHARE_TOKEN; default: the one `govshare login` saved).",
    )(f)
    f = click.option(
        "--dept",
        "dept",
        required=True,
        default=from_settings("dept"),
        metavar="CODE",
        help="Your department: its broker answers (env GOVSHARE_DEPT).",
    )(f)
    return f


def _resolve_token(home: Path, code: str, token: str | None) -> str:
    if token and token.strip():
        return token.strip()
    path = token_path(home, code)
    try:
        saved = path.read_text().strip()
    except FileNotFoundError:
        saved = ""
    except OSError as exc:
        raise ConfigError(f"Cannot read the token file {path} ({exc.strerror}).") from None
    if not saved:
        raise TokenMissing(
            f"No API token for {code}: pass --token, set {ENV_TOKEN}, or save one with "
            f"`govshare login --dept {code}` (an administrator makes tokens with "
            f"`govshare user add NAME --role clerk --dept {code}`)."
        )
    return saved


def _problem(resp: httpx.Response, code: str) -> GovShareError:
    """The broker's problem+json answer as its registered error, code kept."""
    try:
        body = resp.json()
    except ValueError:
        body = None
    if not (isinstance(body, dict) and isinstance(body.get("code"), str)):
        return from_problem(
            None,
            resp.status_code,
            message=f"{code}'s broker answered HTTP {resp.status_code} {resp.reason_phrase}.",
        )
    detail = str(body.get("detail") or body.get("title") or f"HTTP {resp.status_code}")
    extra: dict[str, Any] = {}
    if body.get("errors"):
        fields = ", ".join(
            ".".join(str(x) for x in e.get("loc", [])[1:]) or "?" for e in body["errors"]
        )
        detail = f"{detail.rstrip('.')} ({fields})."
        extra["errors"] = body["errors"]
    if body.get("error_id"):
        extra["error_id"] = body["error_id"]
    if body["code"] in (AuthError.code, InvalidToken.code):
        detail += (
            f" Check the token for {code} (--token, ${ENV_TOKEN}, or "
            f"`govshare login --dept {code}`)."
        )
    return from_problem(body, resp.status_code, message=detail, **extra)


@dataclass
class BrokerClient:
    """One department's broker, as its user."""

    code: str
    url: str
    http: httpx.Client

    @classmethod
    def open(cls, ctx: Ctx, dept: str, token: str | None, broker_url: str | None) -> BrokerClient:
        code = normalise_code(dept)
        home = ctx.home
        if broker_url:
            url = broker_url.rstrip("/")
        else:
            url = load_profile(home, code).endpoint.rstrip("/")
        secret = _resolve_token(home, code, token)
        import httpx

        http = httpx.Client(
            base_url=url,
            headers={"Authorization": f"Bearer {secret}", "User-Agent": "govshare-cli"},
            timeout=httpx.Timeout(TIMEOUT_SECONDS, connect=CONNECT_TIMEOUT_SECONDS),
            follow_redirects=False,
        )
        return cls(code, url, http)

    def close(self) -> None:
        self.http.close()

    def __enter__(self) -> BrokerClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def unreachable(self, exc: httpx.HTTPError, during: str = "") -> BrokerUnreachable:
        import httpx

        if isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout):
            return BrokerUnreachable(
                f"{self.code}'s broker at {self.url} is not answering. Is it running? "
                f"(`govshare dev status`, or `govshare serve --dept {self.code}`)",
                url=self.url,
            )
        if isinstance(exc, httpx.TimeoutException):
            return BrokerUnreachable(
                f"{self.code}'s broker at {self.url} stopped answering{during} (timed out).",
                url=self.url,
            )
        return BrokerUnreachable(
            f"The connection to {self.code}'s broker at {self.url} broke off{during} "
            f"({type(exc).__name__}).",
            url=self.url,
        )

    def call(self, method: str, path: str, **kw: Any) -> httpx.Response:
        """One request; a problem answer or a transport failure raises."""
        import httpx

        try:
            resp = self.http.request(method, path, **kw)
        except httpx.HTTPError as exc:
            raise self.unreachable(exc) from None
        if resp.status_code >= 400:
            raise _problem(resp, self.code)
        return resp

    @contextmanager
    def stream(self, method: str, path: str, **kw: Any) -> Iterator[httpx.Response]:
        """A streamed answer (2xx only; a problem answer raises)."""
        import httpx

        try:
            with self.http.stream(method, path, **kw) as resp:
                if resp.status_code >= 400:
                    resp.read()
                    raise _problem(resp, self.code)
                yield resp
        except httpx.HTTPError as exc:
            raise self.unreachable(exc, " mid-transfer") from None


def open_client(ctx: Ctx, dept: str, token: str | None, broker_url: str | None) -> BrokerClient:
    return BrokerClient.open(ctx, dept, token, broker_url)
