"""The index's per-connection settings reach the database server (SQLite and PostgreSQL)."""

from __future__ import annotations

import threading
import time
import warnings
from collections.abc import Callable

import pytest
from sqlalchemy import Engine, create_engine, event, select, text
from sqlalchemy.exc import SAWarning

from storage.errors import IndexUnavailable
from storage.index.database import Database
from storage.index.dialects import SQLITE_READ_MMAP
from storage.index.direct import DirectStatement
from tests.conftest import Listener
from tests.contract.test_direct_statements import _refuse_connection_execute
from tests.contract.test_index_reconnect import _terminate_backends
from tests.dicom import scu
from tests.support.data import StudySpec, make_study


def test_reads_carry_the_planner_settings(database_url: str) -> None:
    db = Database(database_url)
    try:
        if db.dialect == "sqlite":
            with db.select(text("PRAGMA mmap_size")) as result:
                assert result.scalar() == SQLITE_READ_MMAP
        else:
            with db.select(text("SHOW random_page_cost")) as result:
                assert float(result.scalar()) == 1.1
        with db.write_connection() as conn:
            if db.dialect == "sqlite":
                # writers keep SQLite's default: the map only serves reads
                assert conn.execute(text("PRAGMA mmap_size")).scalar() == 0
            else:
                assert float(conn.execute(text("SHOW random_page_cost")).scalar()) == 1.1
    finally:
        db.dispose()


def test_select_reads_rows_on_both_databases(database_url: str) -> None:
    db = Database(database_url)
    try:
        with db.select(text("select :a + 1"), {"a": 41}) as result:
            assert result.scalar() == 42
    finally:
        db.dispose()


def test_first_reads_one_row_on_the_cursor_on_both_databases(
        database_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """The per-instance look-up (:meth:`Database.first`): the row as the driver returns
    it, ``None`` for no row, and no statement through ``Connection.execute``."""
    db = Database(database_url)
    with db.write_connection() as conn:
        conn.execute(text("create table accessions (accession varchar(16), status varchar(16))"))
        conn.execute(text("insert into accessions values ('A1', 'SCHEDULED')"))
    statement = DirectStatement(select(text("status")).select_from(text("accessions"))
                                .where(text("accession = :accession")))
    try:
        _refuse_connection_execute(monkeypatch)
        assert db.first(statement, {"accession": "A1"}) == ("SCHEDULED",)
        assert db.first(statement, {"accession": "A2"}) is None
        monkeypatch.undo()
        with db.write_connection() as conn:  # the read held no lock: a write goes through
            conn.execute(text("update accessions set status = 'COMPLETED'"))
        assert db.first(statement, {"accession": "A1"}) == ("COMPLETED",)
    finally:
        db.dispose()


def test_select_is_one_statement_outside_a_transaction(
        pg_database: tuple[str, str]) -> None:
    """A hot-path SELECT on PostgreSQL is sent alone: no BEGIN before it (its
    transaction started with the statement itself), no ping, the planner settings kept."""
    # PostgreSQL only: SQLite runs in-process, with no round trips to save
    db = Database(pg_database[1])
    try:
        for _ in range(2):  # a fresh connection, then the pooled one
            with db.select(text("select now() = statement_timestamp(), "
                                "current_setting('random_page_cost'), "
                                "current_setting('plan_cache_mode')")) as result:
                same_start, cost, plans = result.one()
            assert same_start is True
            assert float(cost) == 1.1
            # prepared statements are never run on a generic plan (see dialects.py)
            assert plans == "force_custom_plan"
        with db.write_connection() as conn:  # writes still run in a transaction
            assert conn.execute(text("select now() = statement_timestamp()")).scalar() is False
    finally:
        db.dispose()


def _backend_by_select(db: Database) -> int:
    with db.select(text("select pg_backend_pid()")) as result:
        return int(result.scalar())


def _backend_by_first(db: Database) -> int:
    row = db.first(DirectStatement(select(text("pg_backend_pid()"))), {})
    assert row is not None
    return int(row[0])


@pytest.mark.parametrize("backend", [_backend_by_select, _backend_by_first],
                         ids=["select", "first"])
def test_select_survives_the_server_closing_its_pooled_connection(
        pg_database: tuple[str, str], backend: Callable[[Database], int]) -> None:
    """Without a ping at checkout, a connection the server closed (restart, idle
    timeout) is found by the statement itself, which then runs on a new connection."""
    # PostgreSQL only: SQLite has no server process to close a connection
    db = Database(pg_database[1])
    try:
        first = backend(db)
        with db.write_connection() as conn:
            assert conn.execute(text("select pg_terminate_backend(:pid)"), {"pid": first}).scalar()
        second = backend(db)
        assert second != first
        assert backend(db) == second  # the new connection is kept
    finally:
        db.dispose()



# --- connections kept by each thread between units of work ------------------------------


def _checkouts(engine: Engine) -> list[tuple[int, str]]:
    """``(thread id, thread name)`` of each pool checkout on ``engine`` from now on."""
    seen: list[tuple[int, str]] = []
    event.listen(engine, "checkout", lambda *_: seen.append(
        (threading.get_ident(), threading.current_thread().name)))
    return seen


def _checked_out(engine: Engine) -> int:
    return int(engine.pool.checkedout())  # type: ignore[attr-defined]


def _eventually(condition: Callable[[], bool]) -> bool:
    """Threads end asynchronously: poll ``condition`` for up to five seconds."""
    for _ in range(250):
        if condition():
            return True
        time.sleep(0.02)
    return condition()


def _count(url: str) -> int:
    """Instances in the index, seen from a connection of its own."""
    other = create_engine(url)
    try:
        with other.connect() as conn:
            return int(conn.execute(text("select count(*) from instances")).scalar_one())
    finally:
        other.dispose()


def _pid(db: Database) -> int:
    with db.write_connection() as conn:
        return int(conn.execute(text("select pg_backend_pid()")).scalar_one())


def test_an_association_keeps_its_connection_and_commits_each_instance(
        listener: Listener) -> None:
    """Over a real association each instance is committed before its success status
    (another connection counts it as soon as the status arrives), yet the association's
    thread checks a write connection out of the pool once, not once per instance, and
    returns it when the association (its thread) ends."""
    services = listener.services
    engine = services.db.write_engine
    datasets = make_study(StudySpec(series=1, instances=4))
    contexts = sorted({(str(d.SOPClassUID), str(d.file_meta.TransferSyntaxUID))
                       for d in datasets})
    seen = _checkouts(engine)
    with scu.association(listener, [(c, [ts]) for c, ts in contexts]) as assoc:
        for i, ds in enumerate(datasets):
            assert int(assoc.send_c_store(ds, msg_id=i + 1).Status) == 0
            assert _count(services.db.url) == i + 1
    per_thread = {thread: seen.count(thread) for thread in set(seen)}
    assert per_thread and max(per_thread.values()) == 1, per_thread
    # the association's thread has ended; the audit writer's thread runs on
    still_running = sum(1 for _, name in set(seen) if name == "audit-writer")
    assert _eventually(lambda: _checked_out(engine) == still_running)


def test_a_failed_transaction_rolls_back_and_the_thread_writes_again(
        database_url: str) -> None:
    """A unit of work that fails is rolled back (nothing of it is visible), and the next
    one on the same thread commits, on the connection the thread kept."""
    db = Database(database_url)
    seen = _checkouts(db.write_engine)
    insert = text("insert into remote_aes (ae_title, host, port, description, created_at)"
                  " values (:t, '127.0.0.1', 104, '', CURRENT_TIMESTAMP)")
    rows = text("select ae_title from remote_aes order by ae_title")
    try:
        with pytest.raises(IndexUnavailable), db.write_connection() as conn:
            conn.execute(insert, {"t": "FIRST"})
            conn.execute(insert, {"t": "FIRST"})  # the AE title is unique
        with db.write_connection() as conn:
            conn.execute(insert, {"t": "SECOND"})
        with db.select(rows) as result:
            assert result.scalars().all() == ["SECOND"]
        assert len(seen) == 1  # the second write used the connection the first kept
    finally:
        db.dispose()


def test_selects_keep_their_connection_outside_a_transaction(database_url: str) -> None:
    """Lone SELECTs reuse the thread's connection; a nested one gets its own, and an
    open transaction elsewhere does not hide committed rows from them."""
    db = Database(database_url)
    try:
        with db.select(text("select 1")) as result:
            assert result.scalar() == 1
        engine = db.read_engine if db.dialect == "sqlite" else db._select_engine  # noqa: SLF001
        seen = _checkouts(engine)
        for _ in range(3):
            with db.select(text("select 1")) as result:
                assert result.scalar() == 1
        assert seen == []
        with db.select(text("select 1")) as outer, db.select(text("select 2")) as inner:
            assert (outer.scalar(), inner.scalar()) == (1, 2)
        assert len(seen) == 1  # the nested one only
        with db.write_connection() as conn:
            conn.execute(text("insert into remote_aes (ae_title, host, port, description,"
                              " created_at) values ('NEW', 'h', 1, '', CURRENT_TIMESTAMP)"))
        with db.select(text("select count(*) from remote_aes")) as result:
            assert result.scalar() == 1
    finally:
        db.dispose()


def test_threads_return_their_connections_when_they_end_or_at_dispose(
        database_url: str) -> None:
    """Kept connections never leak: a thread's goes back to the pool when the thread
    ends, and dispose closes those of threads still running."""
    db = Database(database_url)
    stop = threading.Event()
    written = threading.Barrier(3)

    def work(keep_running: bool) -> None:
        with db.write_connection() as conn:
            conn.execute(text("select 1"))
        with db.select(text("select 1")) as result:
            result.scalar()
        written.wait(10)
        if keep_running:
            stop.wait(10)

    threads = [threading.Thread(target=work, args=(running,)) for running in (False, True)]
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", SAWarning)  # no connection left to the GC
            for thread in threads:
                thread.start()
            written.wait(10)
            threads[0].join(10)
            assert _eventually(lambda: _checked_out(db.write_engine) == 1)
            db.dispose()
            assert _checked_out(db.write_engine) == 0
            assert _checked_out(db.read_engine) == 0
            if db.dialect == "postgresql":
                with create_engine(db.url).connect() as conn:
                    others = conn.execute(text(
                        "select count(*) from pg_stat_activity where datname ="
                        " current_database() and pid <> pg_backend_pid()")).scalar()
                assert others == 0
            with db.write_connection() as conn:  # still usable after dispose
                assert conn.execute(text("select 3")).scalar() == 3
    finally:
        stop.set()
        for thread in threads:
            thread.join(10)
        db.dispose()


def test_a_kept_connection_killed_while_idle_is_replaced_unseen(
        pg_database: tuple[str, str]) -> None:
    """The server closed the thread's kept connection while it lay idle (a restart, an
    idle timeout): the next write pings it, replaces it, and succeeds."""
    # PostgreSQL only: SQLite has no server process to lose
    name, url = pg_database
    db = Database(url, ping_after_idle=0.2)
    try:
        first = _pid(db)
        assert _pid(db) == first  # kept
        assert _terminate_backends(name) >= 1
        time.sleep(0.3)
        assert _pid(db) != first
    finally:
        db.dispose()


def test_a_kept_connection_killed_in_use_fails_once_for_every_thread(
        pg_database: tuple[str, str]) -> None:
    """Killed while in steady use (no ping), a kept connection fails the one write that
    finds it dead; that disconnect also retires the connections other threads keep, so
    their next writes succeed instead of each failing once."""
    name, url = pg_database
    db = Database(url, ping_after_idle=60.0)
    pids: dict[str, int] = {}
    results: list[object] = []
    go = threading.Event()
    ready = threading.Event()

    def other_thread() -> None:
        pids["other"] = _pid(db)
        ready.set()
        go.wait(10)
        try:
            results.append(_pid(db))
        except IndexUnavailable as exc:
            results.append(exc)

    thread = threading.Thread(target=other_thread)
    try:
        thread.start()
        assert ready.wait(10)
        first = _pid(db)
        _terminate_backends(name)
        with pytest.raises(IndexUnavailable):
            _pid(db)
        assert _pid(db) not in (first, pids["other"])
        go.set()
        thread.join(10)
        assert len(results) == 1 and isinstance(results[0], int), results
        assert results[0] != pids["other"]
    finally:
        go.set()
        thread.join(10)
        db.dispose()


def test_only_a_pool_size_of_connections_is_kept(database_url: str) -> None:
    """Threads beyond the pool size use a pooled connection per unit of work, so idle
    threads that once used the index (HTTP workers) never hold the whole pool."""
    db = Database(database_url)
    size = int(db.write_engine.pool.size())  # type: ignore[attr-defined]
    done = threading.Barrier(size + 3)
    stop = threading.Event()

    def work() -> None:
        with db.write_connection() as conn:
            conn.execute(text("select 1"))
        done.wait(10)
        stop.wait(10)

    threads = [threading.Thread(target=work) for _ in range(size + 2)]
    try:
        for thread in threads:
            thread.start()
        done.wait(10)
        assert _checked_out(db.write_engine) == size
    finally:
        stop.set()
        for thread in threads:
            thread.join(10)
        db.dispose()
