"""The index's per-connection settings reach the database server (SQLite and PostgreSQL)."""

from __future__ import annotations

from sqlalchemy import text

from storage.index.database import Database
from storage.index.dialects import SQLITE_READ_MMAP


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


def test_select_survives_the_server_closing_its_pooled_connection(
        pg_database: tuple[str, str]) -> None:
    """Without a ping at checkout, a connection the server closed (restart, idle
    timeout) is found by the statement itself, which then runs on a new connection."""
    # PostgreSQL only: SQLite has no server process to close a connection
    db = Database(pg_database[1])
    try:
        with db.select(text("select pg_backend_pid()")) as result:
            first = result.scalar()
        with db.write_connection() as conn:
            assert conn.execute(text("select pg_terminate_backend(:pid)"), {"pid": first}).scalar()
        with db.select(text("select pg_backend_pid()")) as result:
            second = result.scalar()
        assert second != first
    finally:
        db.dispose()
