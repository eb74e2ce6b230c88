"""Shared by the authentication tests: services with HTTP auth on, one user per role."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import httpx

from ris.services import Services, build_services
from storage import StorageSettings
from storage.accounts import AuthSettings, Role
from storage.origin import CLI

PASSWORD = "correct horse battery"


def secured_services(database_url: str, tmp_path: Path, **auth: object) -> Services:
    """Services whose HTTP interface requires credentials (the product default)."""
    return build_services(
        StorageSettings(database_url=database_url, storage_url=f"file://{tmp_path / 'objects'}"),
        AuthSettings(**{"enabled": True, **auth}))  # type: ignore[arg-type]


def add_role_users(services: Services) -> None:
    """One user per role, named after the role, all with :data:`PASSWORD`."""
    for role in Role:
        services.accounts.add(f"{role.value}-user", PASSWORD, role, CLI)


@dataclass
class Callers:
    """Bearer tokens of one user per role, obtained through ``POST /api/auth/token``."""

    tokens: dict[Role, str]

    def headers(self, role: Role) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[role]}"}


def login(client: httpx.Client, role: Role) -> str:
    response = client.post("/api/auth/token", auth=(f"{role.value}-user", PASSWORD))
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["token_type"] == "bearer" and body["expires_in"] > 0
    return str(body["access_token"])


def callers(client: httpx.Client) -> Callers:
    return Callers({role: login(client, role) for role in Role})
