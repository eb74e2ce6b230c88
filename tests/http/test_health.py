"""``/api/health``: index and object storage status, and versions (SPEC.md "HTTP")."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from importlib.metadata import version
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.engine import make_url

from ris.services import Services, build_services
from storage import StorageSettings
from tests.support.pg import database_url, drop_database, fresh_database
from viewer_api import create_app

SECRET = "s3cret-pass-word"


def _with_password(url: str) -> str:
    """``url`` with the password SECRET (the local test server trusts, so it is ignored)."""
    return make_url(url).set(password=SECRET).render_as_string(hide_password=False)


@pytest.fixture
def client(services: Services) -> Iterator[TestClient]:
    with TestClient(create_app(services)) as c:
        yield c


def test_health_is_ok_with_versions(client: TestClient, services: Services) -> None:
    response = client.get("/api/health")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert body["status"] == "ok"

    index = body["checks"]["index"]
    assert index["status"] == "ok"
    assert index["dialect"] == services.db.dialect
    expected_engine = "SQLite" if services.db.dialect == "sqlite" else "PostgreSQL"
    assert expected_engine in index["version"]

    storage = body["checks"]["storage"]
    assert storage["status"] == "ok"
    assert storage["url"].startswith("file://")

    versions = body["versions"]
    for name in ("filmless-pacs", "pydicom", "pynetdicom"):
        assert versions[name] == version(name), versions


def test_health_does_not_reveal_database_credentials(pg_template: str,
                                                      tmp_path: Path) -> None:
    name, url = fresh_database(pg_template)
    with_password = _with_password(url)
    services = build_services(StorageSettings(database_url=with_password,
                                              storage_url=f"file://{tmp_path / 'objects'}"))
    try:
        with TestClient(create_app(services)) as client:
            response = client.get("/api/health")
        assert response.status_code == 200, response.text  # trust auth ignores it
        assert SECRET not in response.text
    finally:
        services.close()
        drop_database(name)


def test_health_is_503_when_object_storage_is_broken(
        client: TestClient, services: Services, tmp_path: Path) -> None:
    objects = tmp_path / "objects"
    assert Path(services.objects.url.removeprefix("file://")) == objects.resolve()
    shutil.rmtree(objects)
    objects.write_text("a file where the object directory should be")

    response = client.get("/api/health")
    assert response.status_code == 503, response.text
    body = response.json()
    assert body["status"] != "ok"
    storage = body["checks"]["storage"]
    assert storage["status"] != "ok"
    assert storage.get("detail"), body  # says what is wrong
    assert body["checks"]["index"]["status"] == "ok"  # and what is not


@pytest.fixture(params=["sqlite", "postgresql"])
def unreachable_index(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Services]:
    """Services whose index cannot be opened: a directory as the SQLite file, or a
    PostgreSQL database that does not exist."""
    if request.param == "sqlite":
        (tmp_path / "index.db").mkdir()
        url = f"sqlite:///{tmp_path / 'index.db'}"
    else:
        request.getfixturevalue("pg_template")
        url = _with_password(database_url("pacs_no_such_database"))
    services = build_services(StorageSettings(database_url=url,
                                              storage_url=f"file://{tmp_path / 'objects'}"))
    yield services
    services.close()


def test_health_is_503_when_the_index_is_unreachable(unreachable_index: Services) -> None:
    with TestClient(create_app(unreachable_index)) as client:
        response = client.get("/api/health")
    assert response.status_code == 503, response.text
    body = response.json()
    assert body["status"] != "ok"
    index = body["checks"]["index"]
    assert index["status"] != "ok"
    assert index.get("detail"), body
    assert SECRET not in response.text
    assert body["checks"]["storage"]["status"] == "ok"
