"""The department's broker users, for its administrators. (``govshare user
add|list|revoke`` does the same on the broker's database directly.)"""

from __future__ import annotations

from fastapi import APIRouter, status

from govshare.api.deps import AdminUser, SettingsDep, UsersDep
from govshare.api.errors import problem_responses
from govshare.api.schemas import UserCreate, UserCreated, UserOut

router = APIRouter(prefix="/v1/users", tags=["users"])


@router.get("", response_model=list[UserOut], responses=problem_responses(401, 403, 500))
def list_users(_admin: AdminUser, users: UsersDep) -> list[UserOut]:
    """Every user of this broker, with how many live tokens each has."""
    return [UserOut.of(u) for u in users.list_users()]


@router.post(
    "",
    response_model=UserCreated,
    status_code=status.HTTP_201_CREATED,
    responses=problem_responses(400, 401, 403, 409, 422, 500),
)
def create_user(
    body: UserCreate, _admin: AdminUser, users: UsersDep, settings: SettingsDep
) -> UserCreated:
    """Add a user of this department and return their first token (shown once)."""
    info, issued = users.add(body.name, body.role, settings.department, label="api")
    return UserCreated(user=UserOut.of(info), token=issued.token)


@router.post(
    "/{name}/revoke",
    response_model=UserOut,
    responses=problem_responses(401, 403, 404, 422, 500),
)
def revoke_user(name: str, _admin: AdminUser, users: UsersDep) -> UserOut:
    """Disable a user and revoke all their tokens, from the next request on."""
    return UserOut.of(users.revoke(name))
