"""``Annotated`` dependency aliases for route functions.

    @router.get("/v1/things")
    def list_things(user: ClerkUser, db: DatabaseDep) -> ...

The services come from the :class:`~govshare.api.context.ApiDeps` given to
``create_app``; the user aliases are also the route's auth rule.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends

from govshare.api.auth import requires
from govshare.api.context import ApiDeps, ApiSettings, get_deps, get_settings
from govshare.broker.db import Database, Role
from govshare.broker.errors import BrokerNotConfigured
from govshare.broker.outbox import Outbox
from govshare.broker.services import BrokerServices
from govshare.broker.users import Principal, Users


async def _db(deps: Annotated[ApiDeps, Depends(get_deps)]) -> Database:
    return deps.db


async def _users(deps: Annotated[ApiDeps, Depends(get_deps)]) -> Users:
    return deps.users


async def _outbox(deps: Annotated[ApiDeps, Depends(get_deps)]) -> Outbox:
    return deps.outbox


async def _services(deps: Annotated[ApiDeps, Depends(get_deps)]) -> BrokerServices:
    if deps.services is None:
        raise BrokerNotConfigured(
            "This broker runs without its ledger and blob store; start it with `govshare serve`."
        )
    return deps.services


DepsDep = Annotated[ApiDeps, Depends(get_deps)]
SettingsDep = Annotated[ApiSettings, Depends(get_settings)]
DatabaseDep = Annotated[Database, Depends(_db)]
UsersDep = Annotated[Users, Depends(_users)]
OutboxDep = Annotated[Outbox, Depends(_outbox)]
ServicesDep = Annotated[BrokerServices, Depends(_services)]

#: Any authenticated user of this department.
CurrentUser = Annotated[Principal, Depends(requires())]
ClerkUser = Annotated[Principal, Depends(requires(Role.CLERK))]
AdminUser = Annotated[Principal, Depends(requires(Role.ADMIN))]
AuditorUser = Annotated[Principal, Depends(requires(Role.AUDITOR))]
#: Administrators and auditors: read access to everything of the department.
OverseerUser = Annotated[Principal, Depends(requires(Role.ADMIN, Role.AUDITOR))]
#: Clerks and administrators: may read records' content.
ReaderUser = Annotated[Principal, Depends(requires(Role.CLERK, Role.ADMIN))]
