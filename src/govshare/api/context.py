"""What the API app is given: its settings and its dependencies (no globals).

:func:`govshare.api.app.create_app` stores both on ``app.state``; route code
reaches them through the ``Annotated`` aliases in :mod:`govshare.api.deps`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, cast

from fastapi import Request

from govshare import __version__
from govshare.broker.db import Database
from govshare.broker.outbox import Outbox
from govshare.broker.users import Users, normalise_dept

if TYPE_CHECKING:
    from govshare.broker.services import BrokerServices
    from govshare.settings import Settings

#: Default limit of a JSON request body: far above any request the API takes.
DEFAULT_MAX_JSON_BODY = 1024 * 1024

#: A readiness probe: returns when its dependency answers, raises when it does not.
Probe = Callable[[], object]

#: The empty file's CID (``ipfs add`` of nothing): what the store probe asks about.
EMPTY_FILE_CID = "bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku"


@dataclass(frozen=True)
class ApiSettings:
    """Plain settings of one department's broker API."""

    department: str
    title: str = "govshare broker"
    version: str = __version__
    #: Seconds a readiness probe may take before it counts as failed.
    probe_timeout: float = 2.0
    #: Serve /openapi.json and /docs.
    docs: bool = True
    #: The largest body of a JSON route (everything but the upload routes, which
    #: take the broker's upload limit), in bytes: refused before it is read.
    max_json_body: int = DEFAULT_MAX_JSON_BODY
    #: A bearer token that may read ``/metrics`` (a Prometheus scraper), besides
    #: an administrator's; None: administrators only.
    metrics_token: str | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "department", normalise_dept(self.department))
        if not self.probe_timeout > 0:
            raise ValueError("probe_timeout must be positive")
        if self.max_json_body < 1:
            raise ValueError("max_json_body must be positive")

    @classmethod
    def from_settings(cls, department: str, settings: Settings) -> ApiSettings:
        """The API settings of ``govshare serve``, from govshare's settings."""
        return cls(
            department=department,
            max_json_body=settings.max_json_body,
            metrics_token=settings.secret("metrics_token"),
        )


@dataclass(frozen=True)
class ApiDeps:
    """The services the API works with, built by the caller (``govshare serve``,
    or a test). ``services`` carries the use cases' dependencies (ledger, blob
    store, keys); without it the records, requests, grants and exchange routes
    answer 503 ``broker.not_configured``."""

    db: Database
    users: Users
    outbox: Outbox
    #: Readiness probes by name ("chain", "store", ...); "database" is added
    #: automatically unless given.
    probes: Mapping[str, Probe] = field(default_factory=dict)
    services: BrokerServices | None = None

    @classmethod
    def from_database(cls, db: Database, probes: Mapping[str, Probe] | None = None) -> ApiDeps:
        """The default wiring over one database (no ledger: the foundation only)."""
        return cls(db=db, users=Users(db), outbox=Outbox(db), probes=dict(probes or {}))

    @classmethod
    def from_services(
        cls, services: BrokerServices, probes: Mapping[str, Probe] | None = None
    ) -> ApiDeps:
        """The full broker: database, users and outbox of ``services``, and probes
        for the chain and the store unless given."""
        default: dict[str, Probe] = {
            "chain": services.ledger.block_number,
            "store": lambda: services.store.has(EMPTY_FILE_CID),
        }
        return cls(
            db=services.db,
            users=Users(services.db, clock=services.clock),
            outbox=services.outbox,
            probes={**default, **dict(probes or {})},
            services=services,
        )

    def all_probes(self) -> dict[str, Probe]:
        return {"database": self.db.ping, **self.probes}


async def get_settings(request: Request) -> ApiSettings:
    return cast(ApiSettings, request.app.state.govshare_settings)


async def get_deps(request: Request) -> ApiDeps:
    return cast(ApiDeps, request.app.state.govshare_deps)
