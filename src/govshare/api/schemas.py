"""Response and request bodies of the broker API (pydantic models)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from govshare.broker.db import Role
from govshare.broker.outbox import OperationView
from govshare.broker.users import UserInfo


class Health(BaseModel):
    status: Literal["ok"] = "ok"


class Check(BaseModel):
    ok: bool
    seconds: float = Field(description="How long the probe took")
    code: str | None = Field(default=None, description="govshare error code when failed")
    detail: str | None = None


class Readiness(BaseModel):
    status: Literal["ready", "unready"]
    checks: dict[str, Check]


class Me(BaseModel):
    name: str
    role: Role
    department: str


class UserOut(BaseModel):
    name: str
    role: Role
    department: str
    active: bool
    active_tokens: int
    created_at: datetime
    disabled_at: datetime | None

    @classmethod
    def of(cls, u: UserInfo) -> UserOut:
        return cls(
            name=u.name,
            role=u.role,
            department=u.department,
            active=u.active,
            active_tokens=u.active_tokens,
            created_at=u.created_at,
            disabled_at=u.disabled_at,
        )


class UserCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=64, examples=["alice"])
    role: Role


class UserCreated(BaseModel):
    user: UserOut
    token: str = Field(description="The user's bearer token. Shown this once; store it now.")


class OperationOut(BaseModel):
    id: str
    kind: str
    state: Literal["pending", "running", "done", "failed"]
    step: str | None = Field(description="The step running or last run")
    result: dict[str, Any] | None
    error: dict[str, Any] | None
    attempts: int
    created_at: datetime
    updated_at: datetime
    finished_at: datetime | None

    @classmethod
    def of(cls, op: OperationView) -> OperationOut:
        return cls(
            id=op.id,
            kind=op.kind,
            state=op.state.value,
            step=op.step_name,
            result=op.result,
            error=op.error,
            attempts=op.attempts,
            created_at=op.created_at,
            updated_at=op.updated_at,
            finished_at=op.finished_at,
        )
