"""The few places where SQLite and PostgreSQL differ, kept in one seam."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine, event
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.sql.dml import Insert

from storage.index.sqlite_writes import begin_on_driver, serialize_writes


def insert_ignore(engine_dialect: str, table: Any, **values: Any) -> Insert:
    """``INSERT … ON CONFLICT DO NOTHING RETURNING id`` for the engine's dialect.

    Two associations may create the same patient, study or series at once; the loser's
    insert is ignored (it returns no row) and it reads the winner's row instead of failing.
    Without ``values`` the columns are those of the parameters it is executed with.
    """
    table = getattr(table, "__table__", table)
    insert = postgresql.insert if engine_dialect == "postgresql" else sqlite.insert
    stmt = insert(table).values(**values) if values else insert(table)
    return stmt.on_conflict_do_nothing().returning(table.c.id)


def insert_new(engine_dialect: str, table: Any, key: Any) -> Insert:
    """``INSERT … ON CONFLICT (key) DO NOTHING RETURNING id``, values bound at execution.

    One round trip where "look for the row, insert it if absent" takes two: it returns the
    new row's id, or no row when ``key`` exists (another unique column's conflict still
    fails). A concurrent insert of the same key waits for the other transaction instead
    of failing on the unique constraint.
    """
    table = getattr(table, "__table__", table)
    insert = postgresql.insert if engine_dialect == "postgresql" else sqlite.insert
    return insert(table).on_conflict_do_nothing(index_elements=[key]).returning(table.c.id)


POSTGRES_CONNECT_ARGS = {"options": "-c random_page_cost=1.1"}
"""Per-session planner costs for PostgreSQL.

The server default ``random_page_cost=4`` prices an index probe as if the index lived on
a spinning disk: with 100,000 studies it turned C-FIND's date-range and "today" queries
into a hash join over a sequential scan of every patient (51 ms for "today", against
5.3 ms for the nested loop chosen at 1.1, the value PostgreSQL's documentation suggests
for SSDs and a cached working set). Set per session so a shared server is not changed.
"""

POSTGRES_SELECT_CONNECT_ARGS = {
    "options": POSTGRES_CONNECT_ARGS["options"] + " -c plan_cache_mode=force_custom_plan"}
"""Sessions of the autocommit pool for hot SELECTs (:meth:`Database.select`).

psycopg prepares a statement on the server once a connection has run it five times
(outside a transaction nothing deallocates it), and PostgreSQL then switches to a generic
plan when it looks cheaper. For C-FIND's date range that plan ignores the bounds' values:
an index scan of every study in id order, 38 ms at 100,000 studies against 11 ms for the
plan made for the actual dates. Every execution is planned for its values instead
(about 1 ms); the parse is still saved.
"""

SQLITE_READ_MMAP = 256 << 20
"""Bytes of the SQLite index read through a memory map on read connections.

Without it every query copies its pages from the OS into each connection's own 2 MB
page cache, again and again once the index outgrows it (a 100,000-study date range
re-read most of its pages per query). Mapped pages are the OS page cache itself, shared
by every connection and process, so this costs no private memory.
"""


SQLITE_AUTOCOMMIT = "pacs_sqlite_autocommit"
"""Execution option of a SQLite connection whose transactions issue no ``BEGIN``.

Set on the connections of :meth:`storage.index.database.Database.select`: a lone SELECT
needs no transaction around it, since in WAL mode one statement reads one snapshot, and
without the ``BEGIN`` its rollback is a no-op in the driver.
"""


def configure_sqlite(engine: Engine, *, immediate: bool, synchronous: str = "FULL",
                     mmap_size: int = 0) -> None:
    """Pragmas for a SQLite index shared by threads and processes.

    WAL lets readers go on while one writer commits; ``busy_timeout`` makes writers wait
    instead of failing; ``case_sensitive_like`` makes ``LIKE`` follow DICOM's case-sensitive
    matching (PN columns are stored upper-cased for their case-insensitive matching) and
    lets prefix patterns use the indexes. Write transactions begin ``IMMEDIATE`` so two
    writers never deadlock upgrading a read lock; on an index file they take turns through
    :func:`~storage.index.sqlite_writes.serialize_writes`, which also gives ``FULL`` its
    durability by syncing the WAL after each commit, outside the turn. The ``BEGIN`` goes
    straight to the driver (:func:`~storage.index.sqlite_writes.begin_on_driver`).
    """
    synchronous = synchronous.upper()
    if synchronous not in ("FULL", "NORMAL", "EXTRA"):
        raise ValueError(f"unsupported SQLite synchronous mode {synchronous!r}")
    path = engine.url.database or ""
    gated = immediate and path not in ("", ":memory:")
    pragma = "NORMAL" if gated and synchronous == "FULL" else synchronous
    begin = "BEGIN IMMEDIATE" if immediate else "BEGIN"

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute(f"PRAGMA synchronous={pragma}")
        cur.execute("PRAGMA busy_timeout=60000")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute("PRAGMA case_sensitive_like=ON")
        if mmap_size:
            cur.execute(f"PRAGMA mmap_size={int(mmap_size)}")
        cur.close()

    if gated:
        serialize_writes(engine, path, sync_after_commit=synchronous == "FULL")
        return

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        if not conn.get_execution_options().get(SQLITE_AUTOCOMMIT):
            begin_on_driver(conn, begin)
