"""Fixtures: an archive on SQLite and on PostgreSQL, object storage on disk and on S3,
and a live DICOM listener on a free loopback port."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from pacs.ae import DicomSettings, configure_library, start_dicom
from ris.services import Services, build_services
from storage import StorageSettings
from storage.accounts import AuthSettings
from storage.index.migrate import upgrade
from tests.support.net import free_port
from tests.support.pg import drop_database, fresh_database, pg_template  # noqa: F401
from tests.support.s3 import moto_endpoint  # noqa: F401

configure_library()


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A migrated, empty index: SQLite in tmp_path, or a fresh PostgreSQL database."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'index.db'}"
        upgrade(url)
        yield url
    else:
        template = request.getfixturevalue("pg_template")
        name, url = fresh_database(template)
        yield url
        drop_database(name)


@pytest.fixture
def pg_database(pg_template: str) -> Iterator[tuple[str, str]]:  # noqa: F811
    """``(name, url)`` of a fresh migrated PostgreSQL index (skips without a server)."""
    name, url = fresh_database(pg_template)
    yield name, url
    drop_database(name)


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path / 'index.db'}"
    upgrade(url)
    return url


AUTH_OFF = AuthSettings(enabled=False)
"""HTTP authentication of the shared fixtures: off, so tests of other features call routes
without credentials. tests/http/test_auth*.py build their services with it on."""


def _services(database_url: str, storage_url: str, *, auth: AuthSettings = AUTH_OFF,
              **options: object) -> Services:
    return build_services(StorageSettings(database_url=database_url, storage_url=storage_url,
                                          **options), auth)  # type: ignore[arg-type]


@pytest.fixture
def services(database_url: str, tmp_path: Path) -> Iterator[Services]:
    """Services on each index backend, with objects on the filesystem."""
    svc = _services(database_url, f"file://{tmp_path / 'objects'}")
    yield svc
    svc.close()


@pytest.fixture(params=["file", "s3"])
def storage_target(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[str, str | None]:
    """``(storage URL, S3 endpoint)``: a directory, or a new bucket on the moto server."""
    if request.param == "file":
        return f"file://{tmp_path / 'objects'}", None
    endpoint = request.getfixturevalue("moto_endpoint")
    return f"s3://pacs-{uuid.uuid4().hex[:8]}/archive", endpoint


@pytest.fixture
def any_services(database_url: str,
                 storage_target: tuple[str, str | None]) -> Iterator[Services]:
    """Services on every index backend × every object-store backend."""
    url, endpoint = storage_target
    svc = _services(database_url, url, s3_endpoint_url=endpoint)
    yield svc
    svc.close()


@pytest.fixture
def sqlite_services(sqlite_url: str, tmp_path: Path) -> Iterator[Services]:
    svc = _services(sqlite_url, f"file://{tmp_path / 'objects'}")
    yield svc
    svc.close()


@dataclass
class Listener:
    host: str
    port: int
    ae_title: str
    services: Services


def _listen(services: Services) -> Iterator[Listener]:
    port = free_port()
    server = start_dicom(services, DicomSettings(ae_title="PACS", host="127.0.0.1", port=port))
    yield Listener("127.0.0.1", port, "PACS", services)
    server.shutdown()
    server.server_close()


@pytest.fixture
def listener(services: Services) -> Iterator[Listener]:
    """Our DICOM AE on a free port, on each index backend."""
    yield from _listen(services)


@pytest.fixture
def any_listener(any_services: Services) -> Iterator[Listener]:
    """Our DICOM AE on every index backend × every object-store backend."""
    yield from _listen(any_services)


@pytest.fixture
def sqlite_listener(sqlite_services: Services) -> Iterator[Listener]:
    """Our DICOM AE on SQLite only, for tests about the network rather than the index."""
    yield from _listen(sqlite_services)
