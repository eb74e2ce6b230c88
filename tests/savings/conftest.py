"""Services priced with the fixed test cost model, on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from ris.services import Services, build_services
from storage import StorageSettings
from tests.conftest import AUTH_OFF
from tests.savings.fixtures import MODEL, Fixed, archive_studies
from viewer_api import create_app


@pytest.fixture
def priced_services(database_url: str, tmp_path: Path) -> Iterator[Services]:
    svc = build_services(StorageSettings(database_url=database_url,
                                         storage_url=f"file://{tmp_path / 'objects'}"),
                         AUTH_OFF, cost_model=MODEL)
    yield svc
    svc.close()


@pytest.fixture
def client(priced_services: Services) -> Iterator[TestClient]:
    with TestClient(create_app(priced_services)) as c:
        yield c


@pytest.fixture
def fixed(priced_services: Services, client: TestClient, tmp_path: Path) -> Fixed:
    """The fixed studies archived, C viewed over WADO-RS, D marked printed over REST."""
    fixed = archive_studies(priced_services, tmp_path / "in")
    viewed = client.get(f"/dicomweb/studies/{fixed.uids['C']}")
    assert viewed.status_code == 200, viewed.text
    marked = client.post(f"/api/studies/{fixed.uids['D']}/printed",
                         json={"sheets": 1, "sheet_size": "35x43"})
    assert marked.status_code == 201, marked.text
    priced_services.audit.flush()
    return fixed
