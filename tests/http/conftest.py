"""Fixtures of the HTTP tests: services with authentication on and a user per role."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from ris.services import Services
from tests.http.auth_support import add_role_users, secured_services


@pytest.fixture
def secured(sqlite_url: str, tmp_path: Path) -> Iterator[Services]:
    """Services on SQLite with HTTP authentication on, and one user per role."""
    svc = secured_services(sqlite_url, tmp_path)
    add_role_users(svc)
    yield svc
    svc.close()
