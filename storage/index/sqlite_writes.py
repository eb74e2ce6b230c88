"""How writers of one SQLite index take turns, and how their commits become durable.

SQLite admits one writer at a time, across every thread and process of the archive, and
with ``synchronous=FULL`` it fsyncs the WAL inside that turn. Ingest with several
receiving processes then queued on the turn, not on the CPU: on a loaded two-core machine
each turn lasted about 10 ms, and the turns together filled the whole run. Two causes:

* a writer that finds the lock taken sleeps in SQLite's busy handler, in steps of 1, 2,
  5, 10 … 100 ms, so the lock lies idle after each commit until a sleeper wakes;
* the WAL's fsync (2.7 ms median on this disk, 12 ms at p90 under load) ran inside the
  turn, so commits could never share a flush of the disk.

:class:`WriteGate` makes writers wait in the kernel instead (a thread lock, then an
exclusive ``flock`` on ``<index>.writelock``), woken the moment the previous writer
commits. :func:`serialize_writes` makes commits durable outside the turn: the connection
runs ``synchronous=NORMAL`` (the commit writes the WAL without syncing it) and the WAL
file is fsynced after the commit, before the caller goes on; nothing is acknowledged
before that. This is as durable as ``FULL``: the fsync covers the commit's frames and
every frame before them, and SQLite reuses the WAL from its start only after a
checkpoint has copied those frames into the database file and synced it (in ``NORMAL``
too). Several processes' fsyncs then overlap, and the file system merges them.

The gate only shortens waits: SQLite's own lock still guarantees one writer, so a writer
that could not take the gate (see :data:`GATE_TIMEOUT`) goes on without it.
"""

from __future__ import annotations

import fcntl
import logging
import os
import sqlite3
import threading
from typing import Any

from sqlalchemy import Engine, event
from sqlalchemy.exc import DBAPIError

log = logging.getLogger(__name__)

GATE_TIMEOUT = 60.0
"""Seconds a writer waits for the gate before it goes on to SQLite's own lock (which
waits ``busy_timeout`` more); only a writer that never commits holds the gate that long."""


class WriteGate:
    """One writer at a time per index file, across threads and processes.

    The thread lock orders the threads of a process (a ``flock`` held by a process is
    granted again to its other threads); the ``flock`` orders processes. Both wake a
    waiter as soon as they are released. The lock file is opened once per process:
    after a fork, a child shares its parent's open file and with it the parent's lock.
    """

    def __init__(self, index_path: str) -> None:
        self.path = index_path + ".writelock"
        self._threads = threading.Lock()
        self._fd: int | None = None
        self._pid = 0
        self._holder: int | None = None

    def _file(self) -> int:
        if self._pid != os.getpid():
            self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
            self._pid = os.getpid()
        assert self._fd is not None
        return self._fd

    def enter(self, holder: int) -> None:
        """Wait for the turn of ``holder`` (the id of the DBAPI connection writing)."""
        if not self._threads.acquire(timeout=GATE_TIMEOUT):
            log.warning("index write gate still held after %.0f s: writing without it",
                        GATE_TIMEOUT)
            return
        try:
            fcntl.flock(self._file(), fcntl.LOCK_EX)
        except OSError:
            self._threads.release()
            raise
        self._holder = holder

    def leave(self, holder: int) -> None:
        """End the turn of ``holder``; nothing if it does not hold the gate."""
        if self._holder != holder:
            return
        self._holder = None
        try:
            fcntl.flock(self._file(), fcntl.LOCK_UN)
        finally:
            self._threads.release()


def sync_wal(index_path: str) -> None:
    """fsync the index's WAL file, making every commit written to it so far durable.

    A missing WAL was checkpointed into the database file, which SQLite synced before
    removing it.
    """
    try:
        fd = os.open(index_path + "-wal", os.O_RDONLY)
    except FileNotFoundError:
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def begin_on_driver(conn: Any, statement: str) -> None:
    """Send ``BEGIN`` (``statement``) on the driver's connection of SQLAlchemy's ``conn``.

    Not ``exec_driver_sql``: that statement runs once per stored instance, and
    SQLAlchemy's execution path (context, events, result object) cost more CPU than the
    statement itself. A driver error is still raised as SQLAlchemy's wrapped error, as
    callers expect.
    """
    try:
        conn.connection.dbapi_connection.execute(statement)
    except sqlite3.Error as exc:
        raise DBAPIError.instance(statement, None, exc, sqlite3.Error) from exc


def _raw(connection: Any) -> int:
    """Identity of the DBAPI connection behind a pool proxy or a raw connection."""
    return id(getattr(connection, "dbapi_connection", connection))


def serialize_writes(engine: Engine, index_path: str, *, sync_after_commit: bool) -> None:
    """Write transactions of ``engine`` begin ``IMMEDIATE`` inside a :class:`WriteGate`;
    with ``sync_after_commit`` each commit is followed by :func:`sync_wal`.

    The turn ends when the transaction does: commit, rollback (also the pool's reset of
    a returned connection) or the connection's close or invalidation.
    """
    gate = WriteGate(index_path)
    dialect = engine.dialect
    commit, rollback = dialect.do_commit, dialect.do_rollback

    def do_commit(dbapi_connection: Any) -> None:
        try:
            commit(dbapi_connection)
        finally:
            gate.leave(_raw(dbapi_connection))
        if sync_after_commit:
            sync_wal(index_path)

    def do_rollback(dbapi_connection: Any) -> None:
        try:
            rollback(dbapi_connection)
        finally:
            gate.leave(_raw(dbapi_connection))

    # the dialect object belongs to this engine alone (create_engine makes one per engine)
    dialect.do_commit = do_commit  # type: ignore[method-assign]
    dialect.do_rollback = do_rollback  # type: ignore[method-assign]

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        holder = _raw(conn.connection)
        gate.enter(holder)
        try:
            begin_on_driver(conn, "BEGIN IMMEDIATE")
        except BaseException:
            gate.leave(holder)
            raise

    @event.listens_for(engine, "close")
    def _on_close(dbapi_connection: Any, _record: Any) -> None:
        gate.leave(_raw(dbapi_connection))

    @event.listens_for(engine, "invalidate")
    def _on_invalidate(dbapi_connection: Any, _record: Any, _exc: Any) -> None:
        gate.leave(_raw(dbapi_connection))
