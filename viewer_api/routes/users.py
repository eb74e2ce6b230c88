"""``/api/users``: accounts and their roles (administrators only).

Accounts are disabled, never deleted: the audit trail names them.
"""

from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter, Response
from pydantic import BaseModel, Field

from storage.accounts import MIN_PASSWORD, Role, UserInfo
from viewer_api.auth import Permission, require
from viewer_api.deps import OriginDep, ServicesDep

router = APIRouter(prefix="/api/users", tags=["users"],
                   dependencies=[require(Permission.USERS_MANAGE)])


class UserIn(BaseModel):
    username: str = Field(min_length=1, max_length=64)
    password: str = Field(min_length=MIN_PASSWORD, max_length=1024)
    role: Role
    full_name: str = Field("", max_length=128)


class UserPatch(BaseModel):
    role: Role | None = None
    disabled: bool | None = None
    full_name: str | None = Field(None, max_length=128)
    password: str | None = Field(None, min_length=MIN_PASSWORD, max_length=1024)


class UserOut(BaseModel):
    username: str
    role: Role
    full_name: str
    disabled: bool
    created_at: datetime | None

    @classmethod
    def of(cls, user: UserInfo) -> UserOut:
        return cls(username=user.username, role=user.role, full_name=user.full_name,
                   disabled=user.disabled, created_at=user.created_at)


@router.get("")
def list_users(services: ServicesDep) -> list[UserOut]:
    return [UserOut.of(u) for u in services.accounts.list()]


@router.post("", status_code=201)
def add_user(body: UserIn, services: ServicesDep, origin: OriginDep) -> UserOut:
    return UserOut.of(services.accounts.add(body.username, body.password, body.role, origin,
                                            full_name=body.full_name))


@router.get("/{username}")
def get_user(username: str, services: ServicesDep) -> UserOut:
    return UserOut.of(services.accounts.get(username))


@router.patch("/{username}")
def update_user(username: str, body: UserPatch, services: ServicesDep,
                origin: OriginDep) -> UserOut:
    """Change role, name, disabled state or password (a new password revokes tokens)."""
    if body.password is not None:
        services.accounts.set_password(username, body.password, origin)
    if body.role is None and body.disabled is None and body.full_name is None:
        return UserOut.of(services.accounts.get(username))
    return UserOut.of(services.accounts.update(username, origin, role=body.role,
                                               disabled=body.disabled,
                                               full_name=body.full_name))


@router.delete("/{username}", status_code=204)
def disable_user(username: str, services: ServicesDep, origin: OriginDep) -> Response:
    """Disable the account and revoke its tokens (it stays, for the audit trail)."""
    services.accounts.disable(username, origin)
    return Response(status_code=204)
