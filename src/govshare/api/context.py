"""What the API app is given: its settings and its dependencies (no globals).

:func:`govshare.api.app.create_app` stores both on ``app.state``; route code
reaches them through the ``Annotated`` aliases in :mod:`govshare.api.deps`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import cast

from fastapi import Request

from govshare import __version__
from govshare.broker.db import Database
from govshare.broker.outbox import Outbox
from govshare.broker.users import Users, normalise_dept

#: A readiness probe: returns when its dependency answers, raises when it does not.
Probe = Callable[[], object]


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

    def __post_init__(self) -> None:
        object.__setattr__(self, "department", normalise_dept(self.department))
        if not self.probe_timeout > 0:
            raise ValueError("probe_timeout must be positive")


@dataclass(frozen=True)
class ApiDeps:
    """The services the API works with, built by the caller (``govshare serve``,
    or a test). The use cases' dependencies (ledger, blob store, keys) join here."""

    db: Database
    users: Users
    outbox: Outbox
    #: Readiness probes by name ("chain", "store", ...); "database" is added
    #: automatically unless given.
    probes: Mapping[str, Probe] = field(default_factory=dict)

    @classmethod
    def from_database(cls, db: Database, probes: Mapping[str, Probe] | None = None) -> ApiDeps:
        """The default wiring over one database."""
        return cls(db=db, users=Users(db), outbox=Outbox(db), probes=dict(probes or {}))

    def all_probes(self) -> dict[str, Probe]:
        return {"database": self.db.ping, **self.probes}


def get_settings(request: Request) -> ApiSettings:
    return cast(ApiSettings, request.app.state.govshare_settings)


def get_deps(request: Request) -> ApiDeps:
    return cast(ApiDeps, request.app.state.govshare_deps)
