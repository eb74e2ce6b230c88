"""The few places where SQLite and PostgreSQL differ, kept in one seam."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine, event
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.sql.dml import Insert


def insert_ignore(engine_dialect: str, table: Any, **values: Any) -> Insert:
    """``INSERT … ON CONFLICT DO NOTHING RETURNING id`` for the engine's dialect.

    Two associations may create the same patient, study or series at once; the loser's
    insert is ignored (it returns no row) and it reads the winner's row instead of failing.
    """
    table = getattr(table, "__table__", table)
    insert = postgresql.insert if engine_dialect == "postgresql" else sqlite.insert
    return insert(table).values(**values).on_conflict_do_nothing().returning(table.c.id)


def configure_sqlite(engine: Engine, *, immediate: bool, synchronous: str = "FULL") -> None:
    """Pragmas for a SQLite index shared by threads and processes.

    WAL lets readers go on while one writer commits; ``busy_timeout`` makes writers wait
    instead of failing; ``case_sensitive_like`` makes ``LIKE`` follow DICOM's case-sensitive
    matching (PN columns are stored upper-cased for their case-insensitive matching) and
    lets prefix patterns use the indexes. Write transactions begin ``IMMEDIATE`` so two
    writers never deadlock upgrading a read lock.
    """
    if synchronous.upper() not in ("FULL", "NORMAL", "EXTRA"):
        raise ValueError(f"unsupported SQLite synchronous mode {synchronous!r}")

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute(f"PRAGMA synchronous={synchronous}")
        cur.execute("PRAGMA busy_timeout=60000")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute("PRAGMA case_sensitive_like=ON")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")
