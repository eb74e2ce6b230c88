"""Engines and sessions of the metadata index, one set per process."""

from __future__ import annotations

import logging
import threading
import time
import weakref
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
    SQLITE_AUTOCOMMIT,
    SQLITE_READ_MMAP,
    configure_sqlite,
)
from storage.index.direct import DirectStatement

log = logging.getLogger(__name__)


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

    @event.listens_for(engine, "checkin")
    def _checked_in(_dbapi_conn: Any, record: Any) -> None:
        record.info["idle_since"] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _checked_out(dbapi_conn: Any, record: Any, _proxy: Any) -> None:
        since = record.info.get("idle_since")
        if since is None or time.monotonic() - since < idle_seconds:
            return  # a new connection, or one in use moments ago
        if _is_gone(engine, dbapi_conn):
            raise DisconnectionError("idle index connection is gone")


def _is_gone(engine: Engine, dbapi_conn: Any) -> bool:
    """Ping ``dbapi_conn``: ``True`` if the server dropped it; other errors propagate."""
    dialect = engine.dialect
    try:
        dialect.do_ping(dbapi_conn)
    except dialect.loaded_dbapi.Error as exc:
        if dialect.is_disconnect(exc, dbapi_conn, None):
            return True
        raise
    return False


def _close_quietly(conn: Connection) -> None:
    """Return a kept connection to its pool; a finalizer must not raise."""
    try:
        conn.close()
    except Exception:  # noqa: BLE001 - runs at thread end, where nobody could handle it
        log.debug("closing a kept index connection failed", exc_info=True)


class _Kept:
    """A connection one thread keeps between units of work, and its state."""

    __slots__ = ("busy", "close", "conn", "generation", "used", "__weakref__")

    def __init__(self, conn: Connection, generation: int) -> None:
        self.conn = conn
        self.generation = generation
        self.busy = False
        self.used = time.monotonic()
        # Runs when the keeper drops the connection, or when the thread ends (its
        # thread-local slot, the only strong reference to this object, is then cleared).
        self.close = weakref.finalize(self, _close_quietly, conn)
        self.close.atexit = False


class _KeptConnections:
    """One engine's connections, each kept by the thread that uses it between uses.

    Ingest runs a unit of work or two per stored instance on each association's thread.
    Checking a connection out of the pool and back in for each (pool locking, the
    checkout/checkin/reset events, a rollback on return) cost measurable CPU per
    instance; a thread keeping its connection pays that once. Each use still runs its
    own transaction, which the caller ends.

    A kept connection is given up, and the next use gets a new one, when it was
    invalidated (a disconnect), when any connection of the engine saw a disconnect since
    it was taken (the pool then invalidates every connection as old; a kept one never
    passes a checkout that would notice), when it lay idle longer than
    ``ping_after_idle`` and a ping finds it gone, or when :meth:`close_all` ran. It is
    returned to the pool when its thread ends. Only ``limit`` connections are kept, so
    threads that used the index once (HTTP worker threads) cannot hold the whole pool; a
    thread beyond that, or a nested use on a thread, gets a pooled connection for the
    one use, as before.
    """

    def __init__(self, engine: Engine, *, limit: int, ping_after_idle: float | None = None,
                 options: Mapping[str, Any] | None = None) -> None:
        self._engine = engine
        self._limit = limit
        self._ping_after = ping_after_idle
        self._options = dict(options or {})
        self._local = threading.local()
        self._lock = threading.Lock()
        self._kept: weakref.WeakSet[_Kept] = weakref.WeakSet()
        self._connecting = 0
        self._generation = 0

    @contextmanager
    def connection(self) -> Iterator[Connection]:
        """This thread's connection for one use; the caller ends any transaction it began."""
        kept = self._take()
        conn = kept.conn if kept is not None else self._connect()
        try:
            yield conn
        finally:
            self._give_back(kept, conn)

    def close_all(self) -> None:
        """Close every kept connection; one in use is closed when its use ends."""
        with self._lock:
            self._generation += 1
            for kept in list(self._kept):
                if not kept.busy:
                    # out of the count now: an idle thread may never come back to drop it
                    self._kept.discard(kept)
                    kept.close()

    def _connect(self) -> Connection:
        conn = self._engine.connect()
        if self._options:
            conn.execution_options(**self._options)
        return conn

    def _take(self) -> _Kept | None:
        kept: _Kept | None = getattr(self._local, "kept", None)
        if kept is not None:
            with self._lock:
                usable = (not kept.busy and kept.close.alive
                          and kept.generation == self._generation)
                if usable:
                    kept.busy = True
            if kept.busy and not usable:
                return None  # a nested use on this thread: a connection of its own
            if usable and not self._lay_dead(kept):
                return kept
            self._drop(kept)
        with self._lock:
            if len(self._kept) + self._connecting >= self._limit:
                return None
            self._connecting += 1  # the slot is taken while the connection is made
        try:
            kept = _Kept(self._connect(), self._generation)
            kept.busy = True
            with self._lock:
                self._kept.add(kept)
        finally:
            with self._lock:
                self._connecting -= 1
        self._local.kept = kept
        return kept

    def _lay_dead(self, kept: _Kept) -> bool:
        """Whether ``kept`` lay idle long enough to be pinged, and the ping failed."""
        if self._ping_after is None or time.monotonic() - kept.used < self._ping_after:
            return False
        if not _is_gone(self._engine, kept.conn.connection.dbapi_connection):
            return False
        kept.conn.invalidate()
        return True

    def _give_back(self, kept: _Kept | None, conn: Connection) -> None:
        if conn.invalidated:
            with self._lock:
                self._generation += 1
        if kept is None:
            conn.close()
            return
        kept.used = time.monotonic()
        with self._lock:
            kept.busy = False
            keep = (kept.generation == self._generation and not conn.invalidated
                    and not conn.in_transaction())
        if not keep:
            self._drop(kept)

    def _drop(self, kept: _Kept) -> None:
        with self._lock:
            self._kept.discard(kept)
        kept.close()
        self._local.kept = None


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
        sqlite = url.startswith("sqlite")
        pool_size = 16 if sqlite else 8
        if sqlite:
            path = url.split("///", 1)[-1]
            if path and path != ":memory:":
                Path(path).parent.mkdir(parents=True, exist_ok=True)
            self.write_engine = create_engine(url, pool_size=pool_size, max_overflow=48)
            configure_sqlite(self.write_engine, immediate=True, synchronous=sqlite_synchronous)
            self.read_engine = create_engine(url, pool_size=pool_size, max_overflow=48)
            configure_sqlite(self.read_engine, immediate=False, synchronous=sqlite_synchronous,
                             mmap_size=SQLITE_READ_MMAP)
        else:
            self.write_engine = create_engine(
                url, pool_size=pool_size, max_overflow=32, connect_args=POSTGRES_CONNECT_ARGS,
            )
            ping_idle_connections(self.write_engine, ping_after_idle)
            self.read_engine = self.write_engine
        self._select_engine = self.read_engine
        if not sqlite:
            self._select_engine = create_engine(
                url, pool_size=pool_size, max_overflow=32, isolation_level="AUTOCOMMIT",
                connect_args=POSTGRES_SELECT_CONNECT_ARGS,
            )
        self.dialect = self.write_engine.dialect.name
        self._write = sessionmaker(self.write_engine, expire_on_commit=False)
        self._read = sessionmaker(self.read_engine, expire_on_commit=False)
        self._writers = _KeptConnections(
            self.write_engine, limit=pool_size,
            ping_after_idle=None if sqlite else ping_after_idle)
        self._selectors = _KeptConnections(
            self._select_engine, limit=pool_size,
            options={SQLITE_AUTOCOMMIT: True} if sqlite else None)

    @contextmanager
    def write(self) -> Iterator[Session]:
        """A session whose transaction commits when the block ends without error."""
        with _translated("write"), self._write.begin() as session:
            yield session

    @contextmanager
    def write_connection(self) -> Iterator[Connection]:
        """A Core connection in a transaction, for the hot ingest path (no ORM overhead).

        The connection is the one this thread keeps (see :class:`_KeptConnections`); the
        transaction is this block's alone, committed when it ends without error, so the
        caller acknowledges nothing before its commit.
        """
        with (_translated("write"), self._writers.connection() as conn,
              conn.begin()):
            yield conn

    @contextmanager
    def read(self) -> Iterator[Session]:
        with _translated("read"), self._read() as session:
            yield session

    @contextmanager
    def select(self, statement: Executable,
               parameters: Mapping[str, Any] | None = None) -> Iterator[CursorResult[Any]]:
        """Run one read-only statement and yield its result, open until the block ends.

        The statement runs outside a transaction, on the connection this thread keeps
        (see :class:`_KeptConnections`). On PostgreSQL (autocommit, READ COMMITTED) and
        on SQLite (WAL, no ``BEGIN`` sent) a lone SELECT sees one snapshot either way, and
        it saves the ``BEGIN``/``ROLLBACK`` around it. The connection is not pinged first:
        one the server has closed meanwhile (restart, idle timeout) fails here, the pool
        then drops it and every connection as old, and the statement runs once more on a
        new one, which is safe as it changes nothing.
        """
        with _translated("read"):
            for attempt in (1, 2):
                with self._selectors.connection() as conn:
                    try:
                        try:
                            result = conn.execute(statement, parameters)
                        except DBAPIError as exc:
                            if attempt == 1 and exc.connection_invalidated:
                                continue
                            raise
                        with result:
                            yield result
                        return
                    finally:
                        if conn.in_transaction():
                            # no BEGIN was sent: this only resets SQLAlchemy's state
                            conn.rollback()

    def first(self, statement: DirectStatement,
              parameters: Mapping[str, Any]) -> tuple[Any, ...] | None:
        """The first row of one read-only statement run as :meth:`select` runs it (outside
        a transaction, on this thread's kept connection, once more on a new connection if
        the server had closed that one), but on the DBAPI cursor: for a look-up made for
        every stored instance, where ``Connection.execute`` and its result object cost
        several times the statement. Values come as the driver returns them."""
        with _translated("read"):
            for attempt in (1, 2):
                with self._selectors.connection() as conn:
                    try:
                        return statement.first(conn, parameters)
                    except DBAPIError as exc:
                        if attempt == 1 and exc.connection_invalidated:
                            continue
                        raise
                    finally:
                        if conn.in_transaction():
                            conn.rollback()
        raise AssertionError("unreachable")  # pragma: no cover - the loop returns or raises

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
        """Close every connection, the ones threads keep included."""
        self._writers.close_all()
        self._selectors.close_all()
        self.write_engine.dispose()
        for engine in {self.read_engine, self._select_engine} - {self.write_engine}:
            engine.dispose()
