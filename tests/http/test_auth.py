"""HTTP authentication and the permission table, walked over every route of the OpenAPI
schema: anonymous callers get 401 with a challenge, roles without the permission 403."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from ris.services import Services
from storage.accounts import Role
from storage.origin import CLI
from tests.http.auth_support import PASSWORD, Callers, callers, login, secured_services
from tests.http.problems import assert_problem
from viewer_api import create_app
from viewer_api.auth import PERMISSIONS, Permission, route_policies

PUBLIC_ROUTES = {("GET", "/api/health"), ("POST", "/api/auth/token")}
"""The only routes anyone may call (docs/security.md)."""


@pytest.fixture
def client(secured: Services) -> Iterator[TestClient]:
    with TestClient(create_app(secured)) as c:
        yield c


@pytest.fixture
def who(client: TestClient) -> Callers:
    return callers(client)


def _operations(client: TestClient) -> list[tuple[str, str]]:
    """Every (METHOD, path template) of the OpenAPI schema."""
    schema = client.app.openapi()  # type: ignore[attr-defined]
    return sorted((method.upper(), path) for path, item in schema["paths"].items()
                  for method in item if method in {"get", "post", "put", "patch", "delete"})


def _concrete(client: TestClient, path: str) -> str:
    """The template with a value in each parameter: a number where the OpenAPI schema says
    the parameter is an integer (``{report_id}``), else a well-formed UID, so that the
    request reaches the route (and its access check) rather than a 404."""
    item = client.app.openapi()["paths"][path]  # type: ignore[attr-defined]
    integers = {p["name"] for op in item.values() if isinstance(op, dict)
                for p in op.get("parameters", [])
                if p.get("in") == "path" and p.get("schema", {}).get("type") == "integer"}
    return re.sub(r"\{([^}]+)\}", lambda m: "1" if m.group(1) in integers else "1.2.3", path)


def _policies(client: TestClient) -> dict[tuple[str, str], object]:
    return {(m, rp.path): rp.policy for rp in route_policies(client.app)
            for m in rp.methods}


def test_every_route_declares_a_policy(client: TestClient) -> None:
    """A router added without ``require(...)`` or ``PUBLIC`` fails here."""
    policies = _policies(client)
    operations = _operations(client)
    assert operations, "the OpenAPI schema lists no routes"
    undeclared = [op for op in operations if not policies.get(op)]
    assert undeclared == [], f"routes without an access policy: {undeclared}"
    public = {op for op in operations if policies[op] == "public"}
    assert public == PUBLIC_ROUTES


def test_anonymous_callers_get_401_with_a_challenge_on_every_route(
        client: TestClient) -> None:
    for method, path in _operations(client):
        if (method, path) in PUBLIC_ROUTES:
            continue
        response = client.request(method, _concrete(client, path))
        body = assert_problem(response, 401)
        challenge = response.headers.get("www-authenticate", "")
        assert "Basic" in challenge and "Bearer" in challenge, (method, path, challenge)
        assert body["status"] == 401


def test_roles_without_the_permission_get_403_on_every_route(
        client: TestClient, who: Callers) -> None:
    policies = _policies(client)
    checked = 0
    for method, path in _operations(client):
        policy = policies[(method, path)]
        if policy == "public":
            continue
        for role in Role:
            if set(policy) <= PERMISSIONS[role]:  # type: ignore[arg-type]
                continue
            response = client.request(method, _concrete(client, path), headers=who.headers(role))
            assert_problem(response, 403)
            checked += 1
    assert checked > 20, checked


def test_roles_with_the_permission_pass_the_check_on_every_route(
        client: TestClient, who: Callers) -> None:
    policies = _policies(client)
    for method, path in _operations(client):
        policy = policies[(method, path)]
        if policy == "public" or (method, path) == ("DELETE", "/api/auth/token"):
            continue  # logging out is tested on its own
        for role in Role:
            if not set(policy) <= PERMISSIONS[role]:  # type: ignore[arg-type]
                continue
            response = client.request(method, _concrete(client, path), headers=who.headers(role))
            assert response.status_code not in (401, 403), (method, path, role, response.text)


def test_a_bad_token_and_a_bad_password_get_401(client: TestClient) -> None:
    assert_problem(client.get("/dicomweb/studies",
                              headers={"Authorization": "Bearer not-a-token"}), 401)
    assert_problem(client.get("/dicomweb/studies", auth=("admin-user", "wrong password")), 401)
    assert_problem(client.get("/dicomweb/studies",
                              headers={"Authorization": "Basic !!notbase64"}), 401)


def test_basic_credentials_and_tokens_both_work(client: TestClient) -> None:
    assert client.get("/dicomweb/studies", auth=("referring-user", PASSWORD)).status_code == 200
    token = login(client, Role.REFERRING)
    bearer = {"Authorization": f"Bearer {token}"}
    assert client.get("/dicomweb/studies", headers=bearer).status_code == 200
    me = client.get("/api/auth/me", headers=bearer).json()
    assert me["username"] == "referring-user" and me["role"] == "referring"
    assert Permission.AUDIT_READ.value not in me["permissions"]


def test_a_token_can_be_had_with_a_json_body(client: TestClient) -> None:
    response = client.post("/api/auth/token", json={"username": "radiologist-user",
                                                    "password": PASSWORD, "expires_in": 120})
    assert response.status_code == 200, response.text
    assert response.json()["expires_in"] == 120
    assert_problem(client.post("/api/auth/token", json={"username": "radiologist-user",
                                                        "password": "nope"}), 401)
    assert_problem(client.post("/api/auth/token"), 401)


def test_a_revoked_token_stops_working(client: TestClient) -> None:
    bearer = {"Authorization": f"Bearer {login(client, Role.TECHNOLOGIST)}"}
    assert client.get("/api/auth/me", headers=bearer).status_code == 200
    assert client.delete("/api/auth/token", headers=bearer).status_code == 204
    assert_problem(client.get("/api/auth/me", headers=bearer), 401)


def test_an_expired_token_stops_working(client: TestClient, secured: Services) -> None:
    user = secured.accounts.get("radiologist-user")
    token, _ = secured.accounts.issue_token(user, CLI, ttl=1)
    bearer = {"Authorization": f"Bearer {token}"}
    assert client.get("/api/auth/me", headers=bearer).status_code == 200
    time.sleep(1.2)
    assert_problem(client.get("/api/auth/me", headers=bearer), 401)


def test_a_new_password_or_disabling_revokes_tokens(client: TestClient, who: Callers) -> None:
    admin = who.headers(Role.ADMIN)
    bearer = who.headers(Role.REFERRING)
    response = client.patch("/api/users/referring-user", headers=admin,
                            json={"password": "another long password"})
    assert response.status_code == 200, response.text
    assert_problem(client.get("/api/auth/me", headers=bearer), 401)
    assert_problem(client.get("/api/auth/me", auth=("referring-user", PASSWORD)), 401)
    assert client.get("/api/auth/me",
                      auth=("referring-user", "another long password")).status_code == 200
    bearer = {"Authorization": "Bearer " + client.post(
        "/api/auth/token", auth=("referring-user", "another long password")
    ).json()["access_token"]}
    assert client.delete("/api/users/referring-user", headers=admin).status_code == 204
    assert_problem(client.get("/api/auth/me", headers=bearer), 401)
    assert_problem(client.get("/api/auth/me",
                              auth=("referring-user", "another long password")), 401)


def test_failed_logins_are_rate_limited_per_user_and_audited(
        client: TestClient, secured: Services) -> None:
    limit = secured.accounts.settings.max_failures
    for _ in range(limit):
        assert_problem(client.post("/api/auth/token", auth=("auditor-user", "guess")), 401)
    response = client.post("/api/auth/token", auth=("auditor-user", PASSWORD))
    assert_problem(response, 429)  # even the right password, until the window passes
    assert int(response.headers["retry-after"]) > 0
    secured.audit.flush()
    logins = [e for e in secured.audit.events(action="login") if e.username == "auditor-user"]
    assert [e.outcome for e in logins].count("failed") == limit
    assert [e.outcome for e in logins].count("refused") == 1
    assert all(e.address.startswith("testclient") for e in logins)


def test_failed_logins_are_rate_limited_per_address(client: TestClient,
                                                    secured: Services) -> None:
    limit = secured.accounts.settings.max_failures
    for n in range(limit):  # a different user each time: only the address links them
        assert_problem(client.get("/dicomweb/studies", auth=(f"nobody{n}", "guess")), 401)
    assert_problem(client.get("/dicomweb/studies", auth=("admin-user", PASSWORD)), 429)


def test_users_api_manages_accounts(client: TestClient, who: Callers) -> None:
    admin = who.headers(Role.ADMIN)
    response = client.post("/api/users", headers=admin, json={
        "username": "dr.lan", "password": "a long password", "role": "radiologist",
        "full_name": "Dr Lan"})
    assert response.status_code == 201, response.text
    assert response.json()["role"] == "radiologist"
    assert_problem(client.post("/api/users", headers=admin, json={
        "username": "dr.lan", "password": "a long password", "role": "radiologist"}), 409)
    assert client.post("/api/users", headers=admin, json={
        "username": "x", "password": "short", "role": "admin"}).status_code == 422
    assert client.post("/api/users", headers=admin, json={
        "username": "x", "password": "long enough", "role": "janitor"}).status_code == 422
    names = {u["username"] for u in client.get("/api/users", headers=admin).json()}
    assert {"dr.lan", "admin-user", "auditor-user"} <= names
    changed = client.patch("/api/users/dr.lan", headers=admin, json={"role": "referring"})
    assert changed.json()["role"] == "referring"
    assert client.get("/api/auth/me", auth=("dr.lan", "a long password")).json()["role"] \
        == "referring"
    assert_problem(client.get("/api/users/nobody", headers=admin), 404)


def test_auth_off_lets_everyone_in_as_anonymous(sqlite_url: str, tmp_path: Path) -> None:
    services = secured_services(sqlite_url, tmp_path, enabled=False)
    try:
        with TestClient(create_app(services)) as client:
            assert client.get("/dicomweb/studies").status_code == 200
            assert client.get("/api/audit").status_code == 200
        services.audit.flush()
        (query,) = [e for e in services.audit.events(action="query") if e.channel == "http"]
        assert (query.username, query.role) == ("anonymous", "admin")
    finally:
        services.close()


def test_a_route_without_a_policy_is_refused(secured: Services) -> None:
    """Default-deny: a route someone forgot to declare is closed, not open."""
    app = create_app(secured)

    @app.get("/api/forgotten")
    def forgotten() -> dict[str, str]:
        return {"secret": "yes"}

    with TestClient(app) as client:
        assert_problem(client.get("/api/forgotten"), 401)
        token = login(client, Role.ADMIN)
        assert_problem(client.get("/api/forgotten",
                                  headers={"Authorization": f"Bearer {token}"}), 403)
