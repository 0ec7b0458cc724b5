"""The caller: who the token belongs to."""

from __future__ import annotations

from fastapi import APIRouter

from govshare.api.deps import CurrentUser
from govshare.api.errors import problem_responses
from govshare.api.schemas import Me

router = APIRouter(prefix="/v1", tags=["me"])


@router.get("/me", response_model=Me, responses=problem_responses(401, 403, 500))
def me(user: CurrentUser) -> Me:
    """The authenticated user: name, role and department."""
    return Me(name=user.name, role=user.role, department=user.department)
