"""Writers of a SQLite index take turns in the kernel, and commits are synced outside the turn."""

from __future__ import annotations

import multiprocessing
import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

from storage.index.database import Database
from storage.index.sqlite_writes import WriteGate
from tests.dicom import scu
from tests.support.data import StudySpec, make_study


@pytest.fixture
def synced(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Paths of the files fsynced meanwhile (the real fsync still runs)."""
    paths: list[str] = []
    real = os.fsync

    def spy(fd: int) -> None:
        paths.append(os.readlink(f"/proc/self/fd/{fd}"))
        real(fd)

    monkeypatch.setattr(os, "fsync", spy)
    return paths


@pytest.fixture
def index(tmp_path: Path) -> Iterator[Database]:
    db = Database(f"sqlite:///{tmp_path / 'index.db'}")
    with db.write_connection() as conn:
        conn.execute(text("create table t (n integer)"))
    yield db
    db.dispose()


def _rows(db: Database) -> int:
    with db.select(text("select count(*) from t")) as result:
        return int(result.scalar_one())


def test_a_stored_instance_is_synced_in_the_wal_before_its_success(
        sqlite_listener: Any, synced: list[str]) -> None:
    """Over a real association: the index commit of each acknowledged instance is followed
    by an fsync of the WAL (the connection itself no longer syncs: synchronous=NORMAL)."""
    datasets = make_study(StudySpec(series=1, instances=3))
    assert scu.store_datasets(sqlite_listener, datasets) == [0x0000] * 3
    wal_syncs = [p for p in synced if p.endswith("index.db-wal")]
    assert len(wal_syncs) >= 3
    with sqlite_listener.services.archive.db.write_connection() as conn:
        assert conn.execute(text("PRAGMA synchronous")).scalar() == 1  # NORMAL


def test_synchronous_normal_is_left_unsynced(tmp_path: Path, synced: list[str]) -> None:
    """PACS_SQLITE_SYNCHRONOUS=NORMAL asks for no sync at commit: none is added."""
    db = Database(f"sqlite:///{tmp_path / 'index.db'}", sqlite_synchronous="NORMAL")
    try:
        with db.write_connection() as conn:
            conn.execute(text("create table t (n integer)"))
            assert conn.execute(text("PRAGMA synchronous")).scalar() == 1
        assert not [p for p in synced if p.endswith("-wal")]
    finally:
        db.dispose()


def test_reads_keep_the_configured_synchronous(index: Database) -> None:
    with index.read() as session:
        assert session.execute(text("PRAGMA synchronous")).scalar() == 2  # FULL


def test_commit_syncs_the_wal(index: Database, synced: list[str]) -> None:
    with index.write_connection() as conn:
        conn.execute(text("insert into t values (1)"))
    assert [p for p in synced if p.endswith("index.db-wal")]


def _hold_gate(index_path: str, entered: Any, release: Any) -> None:
    gate = WriteGate(index_path)
    gate.enter(1)
    entered.set()
    release.wait(30)
    gate.leave(1)


def test_the_gate_orders_processes(tmp_path: Path) -> None:
    """While another process holds the turn, a writer here waits; it goes on once freed."""
    index_path = str(tmp_path / "index.db")
    ctx = multiprocessing.get_context("spawn")
    entered, release = ctx.Event(), ctx.Event()
    other = ctx.Process(target=_hold_gate, args=(index_path, entered, release))
    other.start()
    try:
        assert entered.wait(30)
        gate = WriteGate(index_path)
        got = threading.Event()
        waiter = threading.Thread(target=lambda: (gate.enter(2), got.set()))
        waiter.start()
        assert not got.wait(0.5)  # the other process has the turn
        release.set()
        assert got.wait(10)
        gate.leave(2)
        waiter.join(10)
    finally:
        release.set()
        other.join(10)
    assert other.exitcode == 0


def test_the_gate_orders_threads(index: Database) -> None:
    """Threads of one process (which share the process's flock) still write one at a time
    and every write lands."""
    def write(k: int) -> None:
        for i in range(25):
            with index.write_connection() as conn:
                conn.execute(text("insert into t values (:n)"), {"n": k * 100 + i})

    threads = [threading.Thread(target=write, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert _rows(index) == 100


def _write_in_thread(db: Database) -> bool:
    done = threading.Event()

    def write() -> None:
        with db.write_connection() as conn:
            conn.execute(text("insert into t values (2)"))
        done.set()

    threading.Thread(target=write, daemon=True).start()
    return done.wait(10)


def test_a_failed_transaction_ends_its_turn(index: Database) -> None:
    with pytest.raises(RuntimeError), index.write_connection() as conn:
        conn.execute(text("insert into t values (1)"))
        raise RuntimeError("the unit of work fails")
    assert _write_in_thread(index)  # another thread's write is not kept waiting
    assert _rows(index) == 1


def test_an_invalidated_connection_ends_its_turn(index: Database) -> None:
    conn = index.write_engine.connect()
    conn.begin()
    conn.execute(text("insert into t values (1)"))
    conn.invalidate()  # closed under the transaction, as after a driver error
    conn.close()
    assert _write_in_thread(index)
    assert _rows(index) == 1
