"""``/api/auth``: bearer tokens for viewers and scripts (RFC 6750), and who am I.

``POST /api/auth/token`` takes the credentials as HTTP Basic or as a JSON body and answers
like an OAuth 2.0 token endpoint (RFC 6749 5.1), so OHIF, dicomweb-client and scripts can
send ``Authorization: Bearer …`` afterwards instead of a password on every request.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Body, Request, Response
from pydantic import BaseModel, Field

from storage.errors import NotAuthenticated
from storage.origin import Origin
from viewer_api.auth import (
    PUBLIC,
    Permission,
    Principal,
    basic_credentials,
    bearer_token,
    client_address,
    require,
)
from viewer_api.deps import OriginDep, ServicesDep

router = APIRouter(prefix="/api/auth", tags=["auth"])
Account = Annotated[Principal, require(Permission.ACCOUNT)]


class TokenRequest(BaseModel):
    username: str = Field(min_length=1, max_length=64)
    password: str = Field(min_length=1, max_length=1024)
    expires_in: int | None = Field(None, ge=60, description="seconds; at most the server's")


class TokenOut(BaseModel):
    access_token: str
    token_type: str = "bearer"
    expires_in: int
    expires_at: datetime


class Me(BaseModel):
    username: str
    role: str
    permissions: list[str]


@router.post("/token", dependencies=[PUBLIC])
def issue_token(request: Request, services: ServicesDep,
                body: Annotated[TokenRequest | None, Body()] = None) -> TokenOut:
    """A new bearer token for the user of the Basic credentials or of the JSON body."""
    credentials = basic_credentials(request) or (
        (body.username, body.password) if body is not None else None)
    if credentials is None:
        raise NotAuthenticated("send HTTP Basic credentials or a JSON body with "
                               "username and password")
    origin_address = client_address(request)
    user = services.accounts.authenticate(*credentials, Origin("http", address=origin_address))
    ttl = services.accounts.settings.token_ttl
    if body is not None and body.expires_in is not None:
        ttl = min(ttl, body.expires_in)
    origin = Origin("http", address=origin_address, username=user.username,
                    role=user.role.value)
    token, expires = services.accounts.issue_token(user, origin, ttl)
    return TokenOut(access_token=token, expires_in=ttl, expires_at=expires)


@router.delete("/token", status_code=204)
def revoke_token(request: Request, services: ServicesDep, origin: OriginDep,
                 _: Account) -> Response:
    """Revoke the bearer token this request carries (log out)."""
    token = bearer_token(request)
    if token is None:
        raise NotAuthenticated("send the bearer token to revoke")
    services.accounts.revoke_token(token, origin)
    return Response(status_code=204)


@router.get("/me")
def whoami(principal: Account) -> Me:
    return Me(username=principal.username, role=principal.role,
              permissions=sorted(p.value for p in principal.permissions))
