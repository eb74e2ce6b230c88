"""Hot-path statements compiled once by SQLAlchemy and run on the DBAPI cursor.

Every stored instance runs the same handful of statements (insert the instance, count it,
chain its audit record). Through ``Connection.execute`` each cost 25-40 µs of CPU (the
compiled-cache lookup, an execution context, parameter processing, a result object)
against 4-9 µs on the driver's cursor. :class:`DirectStatement` keeps SQLAlchemy as the
source of the SQL and of the parameter conversion: the statement is compiled by the
connection's dialect, once per dialect and parameter-key set, and each parameter goes
through the bind processor SQLAlchemy would apply (on SQLite a ``datetime`` becomes the
same ``'YYYY-MM-DD HH:MM:SS.ffffff'`` text). It runs on the DBAPI connection of the
SQLAlchemy ``Connection`` the caller holds, so the transaction, pool and disconnect
handling stay SQLAlchemy's: a driver error is handed to the connection's own error
handling, which wraps it (``IndexUnavailable`` at :mod:`storage.index.database`) and
invalidates the pool on a disconnect.

Anything unusual takes SQLAlchemy's ordinary path: statements needing execution-time
defaults, expanding or escaped bind names, and engines with cursor-execute event
listeners (instrumentation and tests see every statement).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Dialect
from sqlalchemy.sql import ClauseElement


@dataclass(frozen=True)
class _Plan:
    """A statement compiled for one dialect: its SQL and how to bind a parameter dict."""

    sql: str
    names: tuple[str, ...]
    fixed: Mapping[str, Any]
    processors: tuple[Callable[[Any], Any] | None, ...]
    positional: bool


def _compile(stmt: ClauseElement, dialect: Dialect, keys: Sequence[str]) -> _Plan | None:
    """Compile ``stmt`` as ``Connection.execute`` would; ``None`` when it needs more than
    plain bound values (then the statement always runs through SQLAlchemy)."""
    compiled: Any = stmt.compile(dialect=dialect, column_keys=list(keys))
    if (getattr(compiled, "insert_prefetch", None) or getattr(compiled, "update_prefetch", None)
            or compiled.literal_execute_params or compiled.post_compile_params
            or compiled.escaped_bind_names
            or any(b.callable is not None for b in compiled.bind_names)):
        return None
    names = tuple(compiled.positiontup) if dialect.positional else tuple(
        compiled.bind_names[b] for b in compiled.bind_names)
    by_name = {compiled.bind_names[b]: b for b in compiled.bind_names}
    processors = tuple(by_name[name].type.dialect_impl(dialect).bind_processor(dialect)
                       for name in names)
    fixed = {name: b.value for b, name in compiled.bind_names.items() if not b.required}
    return _Plan(compiled.string, names, fixed, processors, dialect.positional)


class DirectStatement:
    """One SQLAlchemy statement executed on the DBAPI cursor of the caller's connection.

    Parameters
    ----------
    stmt
        The statement, with ``bindparam`` placeholders (or, for an ``insert`` without
        ``values``, the column keys of the parameter dicts it is executed with).
    """

    def __init__(self, stmt: ClauseElement) -> None:
        self.stmt = stmt
        self._plans: dict[tuple[str, str, str, frozenset[str]], _Plan | None] = {}
        self._lock = threading.Lock()

    def _plan(self, dialect: Dialect, params: Mapping[str, Any]) -> _Plan | None:
        key = (dialect.name, dialect.driver, dialect.paramstyle, frozenset(params))
        try:
            return self._plans[key]
        except KeyError:
            pass
        plan = _compile(self.stmt, dialect, list(params))
        with self._lock:
            self._plans[key] = plan
        return plan

    def first(self, conn: Connection, params: Mapping[str, Any]) -> tuple[Any, ...] | None:
        """Execute and return the first row (a tuple), or ``None``."""
        return self._run(conn, params, fetch=True)

    def scalar(self, conn: Connection, params: Mapping[str, Any]) -> Any:
        """Execute and return the first column of the first row, or ``None``."""
        row = self._run(conn, params, fetch=True)
        return None if row is None else row[0]

    def execute(self, conn: Connection, params: Mapping[str, Any]) -> None:
        """Execute for its effect."""
        self._run(conn, params, fetch=False)

    def _run(self, conn: Connection, params: Mapping[str, Any], *,
             fetch: bool) -> tuple[Any, ...] | None:
        plan = self._plan(conn.dialect, params)
        if plan is None or _instrumented(conn):
            result = conn.execute(self.stmt, dict(params))
            if not fetch:
                return None
            row = result.first()
            return None if row is None else tuple(row)
        fixed = plan.fixed
        values = [proc(params[name] if name in params else fixed[name]) if proc else
                  (params[name] if name in params else fixed[name])
                  for name, proc in zip(plan.names, plan.processors, strict=True)]
        bound: Any = values if plan.positional else dict(zip(plan.names, values, strict=True))
        cursor = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
        try:
            cursor.execute(plan.sql, bound)
            row = cursor.fetchone() if fetch else None
            if fetch and cursor.description is not None:
                # Drain a RETURNING statement: sqlite3 finishes it only once read out.
                cursor.fetchall()
        except Exception as exc:
            # SQLAlchemy's own handling: wrap as a DBAPIError, invalidate on disconnect.
            conn._handle_dbapi_exception(exc, plan.sql, bound, cursor, None)
        finally:
            cursor.close()
        return None if row is None else tuple(row)


def _instrumented(conn: Connection) -> bool:
    """Whether listeners watch cursor executions (they must see every statement).

    Asked of the engine's events (listeners on the engine, or on every ``Engine``), at a
    fifth of the cost of the connection's joined ones; a listener on one ``Connection``
    is not looked for (nothing here installs one).
    """
    dispatch = conn.engine.dispatch
    return bool(dispatch.before_cursor_execute or dispatch.after_cursor_execute)
