"""Module-scoped DICOM listeners, for network tests that leave the archive as it was.

Query and retrieve tests only read the archive, and refused stores must not change it, so
those modules share one listener per backend and check the archive before and after each
case. (Each association costs the listener ~0.2 s, and a fresh listener ~0.7 s, so one per
case would make the suite slow.) Tests that change the archive use the function-scoped
``listener`` / ``sqlite_listener`` fixtures of tests/conftest.py.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from pacs.ae import DicomSettings, start_dicom
from ris.services import Services, build_services
from storage import StorageSettings
from storage.index.migrate import upgrade
from tests.support.net import free_port
from tests.support.pg import drop_database, fresh_database


@dataclass
class ModuleListener:
    host: str
    port: int
    ae_title: str
    services: Services
    backend: str


def _module_listener(request: pytest.FixtureRequest, factory: pytest.TempPathFactory,
                     backend: str) -> Iterator[ModuleListener]:
    tmp: Path = factory.mktemp(f"archive-{backend}")
    dropped: str | None = None
    if backend == "sqlite":
        url = f"sqlite:///{tmp / 'index.db'}"
        upgrade(url)
    else:
        template = request.getfixturevalue("pg_template")
        dropped, url = fresh_database(template)
    services = build_services(StorageSettings(database_url=url,
                                              storage_url=f"file://{tmp / 'objects'}"))
    port = free_port()
    server = start_dicom(services, DicomSettings(ae_title="PACS", host="127.0.0.1", port=port))
    try:
        yield ModuleListener("127.0.0.1", port, "PACS", services, backend)
    finally:
        server.shutdown()
        server.server_close()
        services.close()
        if dropped is not None:
            drop_database(dropped)


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def module_listener(request: pytest.FixtureRequest,
                    tmp_path_factory: pytest.TempPathFactory) -> Iterator[ModuleListener]:
    """Our DICOM AE with an empty archive on each index backend, shared by one module."""
    yield from _module_listener(request, tmp_path_factory, request.param)


@pytest.fixture(scope="module")
def module_sqlite_listener(request: pytest.FixtureRequest,
                           tmp_path_factory: pytest.TempPathFactory
                           ) -> Iterator[ModuleListener]:
    """Our DICOM AE on SQLite, shared by one module (for tests about the network)."""
    yield from _module_listener(request, tmp_path_factory, "sqlite")


@dataclass
class ServedListener:
    host: str
    port: int
    ae_title: str
    services: Services
    server: Any


@pytest.fixture
def served(sqlite_services: Services) -> Iterator[ServedListener]:
    """Our DICOM AE on SQLite, with its server object at hand (to shorten timeouts)."""
    port = free_port()
    server = start_dicom(sqlite_services,
                         DicomSettings(ae_title="PACS", host="127.0.0.1", port=port))
    yield ServedListener("127.0.0.1", port, "PACS", sqlite_services, server)
    server.shutdown()
    server.server_close()
