"""Who may call which route: authentication and the one permission table.

Protection is default-deny. The app runs :func:`enforce_policy` before every route: it
authenticates the caller (HTTP Basic, RFC 7617, or a bearer token, RFC 6750) and refuses
any route that declares no policy. A route declares its policy with one dependency,
on the route or on the router where it is included::

    @router.get("/api/orders", dependencies=[require(Permission.RIS_READ)])
    app.include_router(reports.router, dependencies=[require(Permission.REPORTS_READ)])

and a route that anyone may call says so with ``dependencies=[PUBLIC]``. Which roles hold
which permission is :data:`PERMISSIONS`, the one table (docs/security.md shows it).
"""

from __future__ import annotations

import base64
import binascii
import enum
import hmac
from dataclasses import dataclass
from typing import Any, Literal

from fastapi import Depends, Request
from fastapi.routing import APIRoute
from fastapi.security.utils import get_authorization_scheme_param
from starlette.concurrency import run_in_threadpool

try:
    from fastapi.routing import iter_route_contexts as _iter_route_contexts
except ImportError:  # FastAPI before included routers were kept nested: routes are flat
    _iter_route_contexts = None  # type: ignore[assignment]

from storage.accounts import AuthSettings, Role, UserInfo
from storage.errors import NotAuthenticated, NotAuthorised
from storage.origin import Origin


class Permission(enum.StrEnum):
    """What a route needs; roles hold permissions through :data:`PERMISSIONS`."""

    IMAGES_READ = "images:read"  # QIDO-RS, WADO-RS, WADO-URI, rendered, frames, thumbnails
    IMAGES_WRITE = "images:write"  # STOW-RS, deletions
    RIS_READ = "ris:read"  # patients, orders, worklist, studies and their workflow status
    RIS_WRITE = "ris:write"  # create and edit patients and orders
    REPORTS_READ = "reports:read"
    REPORTS_WRITE = "reports:write"  # draft, sign, amend
    SHARES_WRITE = "shares:write"  # digital-film links of a study
    AES_READ = "aes:read"
    AES_WRITE = "aes:write"
    USERS_MANAGE = "users:manage"
    AUDIT_READ = "audit:read"
    SAVINGS_READ = "savings:read"
    METRICS_READ = "metrics:read"
    ACCOUNT = "account"  # one's own session: tokens, who am I


P = Permission
_EVERYONE = {P.ACCOUNT}
PERMISSIONS: dict[Role, frozenset[Permission]] = {
    Role.ADMIN: frozenset(Permission),
    Role.RADIOLOGIST: frozenset(_EVERYONE | {
        P.IMAGES_READ, P.IMAGES_WRITE, P.RIS_READ, P.REPORTS_READ, P.REPORTS_WRITE,
        P.SHARES_WRITE, P.AES_READ}),
    Role.TECHNOLOGIST: frozenset(_EVERYONE | {
        P.IMAGES_READ, P.IMAGES_WRITE, P.RIS_READ, P.RIS_WRITE, P.REPORTS_READ, P.AES_READ}),
    Role.REFERRING: frozenset(_EVERYONE | {
        P.IMAGES_READ, P.RIS_READ, P.REPORTS_READ, P.SHARES_WRITE}),
    Role.AUDITOR: frozenset(_EVERYONE | {P.AUDIT_READ, P.SAVINGS_READ}),
}
"""The permission table: every role and what it may do (docs/security.md)."""


@dataclass(frozen=True)
class Principal:
    """The authenticated caller of one request."""

    username: str
    role: str
    permissions: frozenset[Permission]

    def origin(self, address: str) -> Origin:
        return Origin(channel="http", address=address, username=self.username, role=self.role)


ANONYMOUS = Principal("anonymous", Role.ADMIN.value, frozenset(Permission))
"""Every caller when authentication is off (``PACS_AUTH=off``, a closed lab)."""

SCRAPER = Principal("metrics", "", frozenset({Permission.METRICS_READ}))
"""A Prometheus scraper presenting ``PACS_METRICS_TOKEN``."""


def principal_of(user: UserInfo) -> Principal:
    return Principal(user.username, user.role.value, PERMISSIONS[user.role])


def client_address(request: Request) -> str:
    client = request.client
    return f"{client.host}:{client.port}" if client else ""


# -- declaring policies ----------------------------------------------------------------------
class _Requirement:
    """The dependency :func:`require` returns; :func:`policy_of` finds it on a route."""

    def __init__(self, permission: Permission) -> None:
        self.permission = permission

    async def __call__(self, request: Request) -> Principal:
        principal = await authenticated(request)
        if self.permission not in principal.permissions:
            raise NotAuthorised(f"role {principal.role or 'none'} may not do this "
                                f"({self.permission.value})")
        return principal

    def __repr__(self) -> str:
        return f"require({self.permission.value})"


def require(permission: Permission) -> Any:
    """The dependency that lets only roles holding ``permission`` call a route."""
    return Depends(_Requirement(permission))


def _public() -> None:
    """Marks a route that needs no credentials."""


PUBLIC: Any = Depends(_public)
"""``dependencies=[PUBLIC]``: the route needs no credentials (liveness, login)."""


Policy = Literal["public"] | tuple[Permission, ...]


@dataclass(frozen=True)
class RoutePolicy:
    """One route of the app as the caller sees it, and what it requires."""

    path: str
    methods: frozenset[str]
    policy: Policy
    route: Any  # the route object Starlette puts in ``scope["route"]``


def _policy(dependant: Any) -> Policy:
    found: set[Permission] = set()
    public = False
    stack = list(dependant.dependencies)
    while stack:
        dep = stack.pop()
        if isinstance(dep.call, _Requirement):
            found.add(dep.call.permission)
        elif dep.call is _public:
            public = True
        stack.extend(dep.dependencies)
    return "public" if public and not found else tuple(sorted(found))


def route_policies(app: Any) -> list[RoutePolicy]:
    """Every FastAPI route of ``app`` with its effective policy (router dependencies and
    ``include_router(..., dependencies=...)`` included). Plain Starlette routes
    (``/openapi.json``, ``/docs``) have no dependencies and are not listed."""
    if _iter_route_contexts is not None:  # FastAPI >= 0.16x keeps included routers nested
        routes: Any = _iter_route_contexts(app.routes)
    else:
        routes = app.routes
    out = []
    for rc in routes:
        original = getattr(rc, "original_route", rc)
        try:
            dependant = rc.dependant
        except AttributeError:
            continue
        if dependant is None or not isinstance(original, APIRoute):
            continue
        path = getattr(rc, "path_format", None) or rc.path
        out.append(RoutePolicy(path, frozenset(rc.methods or ()), _policy(dependant), original))
    return out


def policy_of(request: Request) -> Policy:
    """The policy of the route this request matched; ``()`` if none is declared."""
    app = request.app
    table: dict[int, Policy] | None = getattr(app.state, "route_policies", None)
    if table is None:
        table = {}
        for rp in route_policies(app):
            # One route object included twice with different policies: the stricter wins.
            old = table.get(id(rp.route))
            if old is None or old == "public":
                table[id(rp.route)] = rp.policy
            elif rp.policy != "public":
                table[id(rp.route)] = tuple(sorted(set(old) | set(rp.policy)))
        app.state.route_policies = table
    route = request.scope.get("route")
    return table.get(id(route), ()) if route is not None else ()


# -- authenticating --------------------------------------------------------------------------
def basic_credentials(request: Request) -> tuple[str, str] | None:
    """``(username, password)`` of an ``Authorization: Basic`` header (RFC 7617), if any."""
    scheme, value = get_authorization_scheme_param(request.headers.get("authorization"))
    if scheme.lower() != "basic":
        return None
    try:
        username, sep, password = base64.b64decode(value, validate=True).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError):
        raise NotAuthenticated("malformed Basic credentials") from None
    if not sep:
        raise NotAuthenticated("malformed Basic credentials")
    return username, password


def bearer_token(request: Request) -> str | None:
    scheme, value = get_authorization_scheme_param(request.headers.get("authorization"))
    return value if scheme.lower() == "bearer" and value else None


def authenticate(request: Request) -> Principal:
    """The caller of this request, from its ``Authorization`` header (once per request).

    Raises
    ------
    NotAuthenticated
        No credentials, or credentials that are wrong, expired or revoked (HTTP 401).
    TooManyAttempts
        Too many failed Basic logins from this user or address (HTTP 429).
    """
    principal: Principal | None = getattr(request.state, "principal", None)
    if principal is not None:
        return principal
    services = request.app.state.services
    settings: AuthSettings = services.accounts.settings
    if not settings.enabled:
        principal = ANONYMOUS
    elif (token := bearer_token(request)) is not None:
        metrics = settings.metrics_token
        if metrics and hmac.compare_digest(token.encode(), metrics.encode()):
            principal = SCRAPER
        else:
            principal = principal_of(services.accounts.user_for_token(token))
    elif (basic := basic_credentials(request)) is not None:
        origin = Origin(channel="http", address=client_address(request))
        principal = principal_of(services.accounts.authenticate(*basic, origin))
    else:
        raise NotAuthenticated("credentials are required (HTTP Basic or a bearer token)")
    request.state.principal = principal
    return principal


async def authenticated(request: Request) -> Principal:
    """:func:`authenticate` for an ``async`` dependency: on the event loop when nothing
    can block (the request's principal is known, or authentication is off), else in the
    threadpool (a token is looked up in the index, a password hash is checked)."""
    principal: Principal | None = getattr(request.state, "principal", None)
    if principal is not None:
        return principal
    if not request.app.state.services.accounts.settings.enabled:
        request.state.principal = ANONYMOUS
        return ANONYMOUS
    return await run_in_threadpool(authenticate, request)


async def enforce_policy(request: Request) -> None:
    """The app-wide dependency: authenticate, and refuse routes without a declared policy.

    With authentication off every route is open (the OpenAPI walk in the tests still
    fails on a route without a policy).
    """
    policy = policy_of(request)
    if policy == "public":
        return
    principal = await authenticated(request)
    if not policy and principal is not ANONYMOUS:
        raise NotAuthorised("this route declares no access policy, so nobody may call it")


__all__ = ["ANONYMOUS", "PERMISSIONS", "PUBLIC", "Permission", "Principal", "authenticate",
           "authenticated",
           "enforce_policy", "policy_of", "require", "route_policies"]
