"""Engines and sessions of the metadata index, one set per process."""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, CursorResult, Engine, Executable, create_engine, event, text
from sqlalchemy.exc import DBAPIError, DisconnectionError, SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from storage.errors import IndexUnavailable
from storage.index.dialects import (
    POSTGRES_CONNECT_ARGS,
    POSTGRES_SELECT_CONNECT_ARGS,
    SQLITE_READ_MMAP,
    configure_sqlite,
)


@contextmanager
def _translated(what: str) -> Iterator[None]:
    """Database errors become :class:`IndexUnavailable` (callers never see SQLAlchemy's)."""
    try:
        yield
    except SQLAlchemyError as exc:
        raise IndexUnavailable(f"index {what} failed: {type(exc).__name__}") from exc


PING_AFTER_IDLE = 1.0
"""Seconds a pooled PostgreSQL connection may lie unused before its checkout pings it."""


def ping_idle_connections(engine: Engine, idle_seconds: float) -> None:
    """Ping a pooled connection on checkout only if it lay unused for ``idle_seconds``.

    ``pool_pre_ping`` pings at every checkout: ingest checks out a connection or two per
    instance, so that was a ``SELECT 1`` round trip (and its work in the server process)
    per checkout, with a connection used milliseconds before. A connection that lay idle
    is the one likely to be dead (PostgreSQL restarted, an idle timeout, a proxy): it is
    pinged, and a dead one is replaced before the caller sees it (the pool retries the
    checkout on :class:`~sqlalchemy.exc.DisconnectionError`). One killed while in steady
    use fails its next statement instead: SQLAlchemy recognises the disconnect, and
    invalidates every connection of the pool that existed then, so only that operation
    fails (its caller reports ``IndexUnavailable``; no store is acknowledged without its
    commit) and the next checkouts connect afresh.
    """
    dialect = engine.dialect

    @event.listens_for(engine, "checkin")
    def _checked_in(_dbapi_conn: Any, record: Any) -> None:
        record.info["idle_since"] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _checked_out(dbapi_conn: Any, record: Any, _proxy: Any) -> None:
        since = record.info.get("idle_since")
        if since is None or time.monotonic() - since < idle_seconds:
            return  # a new connection, or one in use moments ago
        try:
            dialect.do_ping(dbapi_conn)
        except dialect.loaded_dbapi.Error as exc:
            if dialect.is_disconnect(exc, dbapi_conn, None):
                raise DisconnectionError("idle index connection is gone") from exc
            raise


class Database:
    """The index's engines: one for writes and one for reads.

    On SQLite the two differ (writes begin ``IMMEDIATE``); on PostgreSQL they are the same
    engine. Every unit of work opens its own session with :meth:`write` or :meth:`read`
    and commits once; helpers never commit.

    Single SELECTs on a hot path (C-FIND, QIDO-RS, locate, the accession lookup of each
    stored instance) go through :meth:`select`. On PostgreSQL it has a pool of its own,
    in autocommit and without a ping at checkout, so such a query is one round trip to
    the server instead of four (ping, ``BEGIN``, the SELECT, ``ROLLBACK``): each is a
    wake-up of the server process, a millisecond or more when the machine is busy.
    """

    def __init__(self, url: str, *, sqlite_synchronous: str = "FULL",
                 ping_after_idle: float = PING_AFTER_IDLE) -> None:
        self.url = url
        if url.startswith("sqlite"):
            path = url.split("///", 1)[-1]
            if path and path != ":memory:":
                Path(path).parent.mkdir(parents=True, exist_ok=True)
            self.write_engine = create_engine(url, pool_size=16, max_overflow=48)
            configure_sqlite(self.write_engine, immediate=True, synchronous=sqlite_synchronous)
            self.read_engine = create_engine(url, pool_size=16, max_overflow=48)
            configure_sqlite(self.read_engine, immediate=False, synchronous=sqlite_synchronous,
                             mmap_size=SQLITE_READ_MMAP)
        else:
            self.write_engine = create_engine(
                url, pool_size=8, max_overflow=32, connect_args=POSTGRES_CONNECT_ARGS,
            )
            ping_idle_connections(self.write_engine, ping_after_idle)
            self.read_engine = self.write_engine
        self._select_engine = self.read_engine
        if not url.startswith("sqlite"):
            self._select_engine = create_engine(
                url, pool_size=8, max_overflow=32, isolation_level="AUTOCOMMIT",
                connect_args=POSTGRES_SELECT_CONNECT_ARGS,
            )
        self.dialect = self.write_engine.dialect.name
        self._write = sessionmaker(self.write_engine, expire_on_commit=False)
        self._read = sessionmaker(self.read_engine, expire_on_commit=False)

    @contextmanager
    def write(self) -> Iterator[Session]:
        """A session whose transaction commits when the block ends without error."""
        with _translated("write"), self._write.begin() as session:
            yield session

    @contextmanager
    def write_connection(self) -> Iterator[Connection]:
        """A Core connection in a transaction, for the hot ingest path (no ORM overhead)."""
        with _translated("write"), self.write_engine.begin() as conn:
            yield conn

    @contextmanager
    def read(self) -> Iterator[Session]:
        with _translated("read"), self._read() as session:
            yield session

    @contextmanager
    def select(self, statement: Executable,
               parameters: Mapping[str, Any] | None = None) -> Iterator[CursorResult[Any]]:
        """Run one read-only statement and yield its result, open until the block ends.

        On PostgreSQL the statement runs outside a transaction (a lone SELECT sees one
        snapshot either way under READ COMMITTED) on a connection that was not pinged. A
        connection the server has closed meanwhile (restart, idle timeout) fails here
        instead of at a ping: the pool then drops it and every connection as old, and
        the statement runs once more on a new one, which is safe as it changes nothing.
        """
        with _translated("read"):
            for attempt in (1, 2):
                conn = self._select_engine.connect()
                try:
                    result = conn.execute(statement, parameters)
                except DBAPIError as exc:
                    conn.close()
                    if attempt == 1 and exc.connection_invalidated:
                        continue
                    raise
                with conn:
                    yield result
                return

    def check(self) -> str:
        """Raise :class:`IndexUnavailable` unless the database answers; return its version."""
        try:
            with self.read_engine.connect() as conn:
                if self.dialect == "sqlite":
                    return "SQLite " + str(conn.execute(text("select sqlite_version()")).scalar())
                return str(conn.execute(text("select version()")).scalar()).split(" on ")[0]
        except SQLAlchemyError as exc:
            raise IndexUnavailable(f"index unreachable: {type(exc).__name__}") from exc

    def dispose(self) -> None:
        self.write_engine.dispose()
        for engine in {self.read_engine, self._select_engine} - {self.write_engine}:
            engine.dispose()
