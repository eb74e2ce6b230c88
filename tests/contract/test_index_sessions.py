"""The index's per-connection settings reach the database server (SQLite and PostgreSQL)."""

from __future__ import annotations

from sqlalchemy import text

from storage.index.database import Database
from storage.index.dialects import SQLITE_READ_MMAP


def test_read_connections_carry_the_planner_settings(database_url: str) -> None:
    db = Database(database_url)
    try:
        with db.read_connection() as conn:
            if db.dialect == "sqlite":
                assert conn.execute(text("PRAGMA mmap_size")).scalar() == SQLITE_READ_MMAP
            else:
                assert float(conn.execute(text("SHOW random_page_cost")).scalar()) == 1.1
        with db.write_connection() as conn:
            if db.dialect == "sqlite":
                # writers keep SQLite's default: the map only serves reads
                assert conn.execute(text("PRAGMA mmap_size")).scalar() == 0
            else:
                assert float(conn.execute(text("SHOW random_page_cost")).scalar()) == 1.1
    finally:
        db.dispose()
