"""Durable operations (publish, ...): poll one the caller submitted."""

from __future__ import annotations

from fastapi import APIRouter

from govshare.api.deps import CurrentUser, OutboxDep
from govshare.api.errors import problem_responses
from govshare.api.schemas import OperationOut
from govshare.broker.db import Role
from govshare.broker.outbox import principal_of
from govshare.errors import NotFound

router = APIRouter(prefix="/v1/operations", tags=["operations"])


@router.get(
    "/{op_id}", response_model=OperationOut, responses=problem_responses(401, 403, 404, 422, 500)
)
def get_operation(op_id: str, user: CurrentUser, outbox: OutboxDep) -> OperationOut:
    """An operation's state, step, result or error. Clerks see their own
    operations; administrators and auditors see all of the department's."""
    op = outbox.get(op_id)
    overseer = user.role in (Role.ADMIN, Role.AUDITOR)
    if not overseer and op.principal != principal_of(user):
        # the same answer as for an unknown id: do not confirm others' ids exist
        raise NotFound(f"No operation {op_id!r}.", operation_id=op_id)
    return OperationOut.of(op)
