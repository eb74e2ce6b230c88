"""The PostgreSQL index survives its server connections being killed (restart, idle kill).

Pooled connections are pinged on checkout only after lying idle
(:func:`storage.index.database.ping_idle_connections`), not at every checkout: these tests
kill the backends with ``pg_terminate_backend`` and show what the next operations see.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, text

from ris.services import build_services
from storage import StorageSettings
from storage.archive import StoreOutcome
from storage.errors import IndexUnavailable
from storage.index.database import PING_AFTER_IDLE, Database
from storage.index.query import Level, Query
from storage.origin import Origin
from tests.conftest import AUTH_OFF
from tests.support.data import StudySpec, make_study, write
from tests.support.pg import ADMIN_URL

ORIGIN = Origin(channel="dimse", calling_ae="MODALITY", address="127.0.0.1:4000")


def _terminate_backends(name: str) -> int:
    """Kill every server process connected to database ``name``; return how many."""
    admin = create_engine(ADMIN_URL, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            killed = conn.execute(text(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
                " WHERE datname = :name AND pid <> pg_backend_pid()"), {"name": name}).scalar()
        # the kill is asynchronous: wait until the backends are gone
        for _ in range(100):
            with admin.connect() as conn:
                if not conn.execute(text("SELECT count(*) FROM pg_stat_activity"
                                         " WHERE datname = :name"), {"name": name}).scalar():
                    break
            time.sleep(0.02)
        return int(killed or 0)
    finally:
        admin.dispose()


def _count_pings(db: Database) -> list[int]:
    calls = [0]
    dialect = db.write_engine.dialect
    ping = dialect.do_ping

    def counting(dbapi_conn: Any) -> bool:
        calls[0] += 1
        return ping(dbapi_conn)

    dialect.do_ping = counting  # type: ignore[method-assign]
    return calls


def test_store_and_query_work_after_the_backends_were_killed(
        pg_database: tuple[str, str], tmp_path: Path) -> None:
    name, url = pg_database
    services = build_services(StorageSettings(
        database_url=url, storage_url=f"file://{tmp_path / 'objects'}"), AUTH_OFF)
    try:
        first, second = (write(ds, tmp_path / "in")
                         for ds in make_study(StudySpec(series=1, instances=2)))
        assert services.archive.store(first, ORIGIN).outcome is StoreOutcome.STORED
        services.audit.flush()
        assert _terminate_backends(name) >= 1
        time.sleep(PING_AFTER_IDLE + 0.1)  # as after a server restart: the pool lay idle
        assert services.archive.store(second, ORIGIN).outcome is StoreOutcome.STORED
        matches = list(services.archive.find(Query(Level.IMAGE, {}), ORIGIN))
        assert len(matches) == 2
    finally:
        services.close()


def test_only_idle_connections_are_pinged_and_a_dead_one_is_replaced(
        pg_database: tuple[str, str]) -> None:
    name, url = pg_database
    db = Database(url, ping_after_idle=0.2)
    pings = _count_pings(db)
    try:
        for _ in range(3):  # ingest's pattern: checkouts moments apart
            with db.write_connection() as conn:
                conn.execute(text("SELECT 1"))
        assert pings[0] == 0
        _terminate_backends(name)
        time.sleep(0.3)
        with db.write_connection() as conn:  # pinged, found dead, replaced unseen
            assert conn.execute(text("SELECT 2")).scalar() == 2
        assert pings[0] == 1
    finally:
        db.dispose()


def test_a_connection_killed_in_use_fails_one_operation_then_the_pool_reconnects(
        pg_database: tuple[str, str]) -> None:
    name, url = pg_database
    db = Database(url, ping_after_idle=60.0)
    try:
        with db.write_connection() as a, db.write_connection() as b:  # two pooled connections
            a.execute(text("SELECT 1"))
            b.execute(text("SELECT 1"))
        _terminate_backends(name)
        with pytest.raises(IndexUnavailable):
            with db.write_connection() as conn:
                conn.execute(text("SELECT 1"))
        # the disconnect invalidated the whole pool: the other stale connection is not
        # handed out again, both next checkouts connect afresh
        with db.write_connection() as a, db.write_connection() as b:
            assert a.execute(text("SELECT 1")).scalar() == 1
            assert b.execute(text("SELECT 1")).scalar() == 1
    finally:
        db.dispose()
