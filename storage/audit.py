"""The audit trail: one append-only record per access to or change of patient data.

Changes (stores, revisions) are audited inside the transaction that makes them, so the
record and the change commit together. Reads (queries, retrievals, logins) are queued and
written by one background thread in batches, each batch in one transaction, so a C-FIND
does not wait for a disk flush; :meth:`AuditLog.flush` drains the queue (at shutdown and in
tests). Like dcm4chee's asynchronous audit messages, this trades the last fraction of a
second of read records in a crash for query latency.

Every record is hash-chained to the one before it (:mod:`storage.audit_chain`), so an edit
or a deletion is found by ``pacs audit verify``.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Select, select

from storage import audit_chain
from storage.index.database import Database
from storage.index.models import AuditEvent
from storage.origin import Origin

log = logging.getLogger(__name__)

append_events = audit_chain.append
"""Chain and insert event rows in the caller's write transaction (the ingest hot path)."""


def utcnow() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def event_values(
    origin: Origin,
    action: str,
    outcome: str,
    *,
    patient_id: str = "",
    study_uid: str = "",
    detail: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The column values of one audit event, cut to the column sizes (before hashing)."""
    return dict(
        at=utcnow(),
        channel=origin.channel[:16],
        username=origin.username[:64],
        role=origin.role[:16],
        calling_ae=origin.calling_ae[:16],
        called_ae=origin.called_ae[:16],
        address=origin.address[:64],
        action=action[:32],
        outcome=outcome[:32],
        patient_id=patient_id[:64],
        study_uid=study_uid[:64],
        detail=json.dumps(detail, separators=(",", ":"), default=str) if detail else "",
    )


@dataclass(frozen=True)
class AuditFilter:
    """Conditions of an audit search (``/api/audit``); empty fields match everything.

    ``since`` is inclusive and ``until`` exclusive, both UTC.
    """

    username: str = ""
    role: str = ""
    action: str = ""
    outcome: str = ""
    channel: str = ""
    calling_ae: str = ""
    patient_id: str = ""
    study_uid: str = ""
    address: str = ""
    since: datetime | None = None
    until: datetime | None = None

    def apply(self, stmt: Select[Any]) -> Select[Any]:
        for name in ("username", "role", "action", "outcome", "channel", "calling_ae",
                     "patient_id", "study_uid"):
            value = getattr(self, name)
            if value:
                stmt = stmt.where(getattr(AuditEvent, name) == value)
        if self.address:  # the host part; the stored address ends with the client port
            stmt = stmt.where(AuditEvent.address.like(f"{_escape(self.address)}%", escape="\\"))
        if self.since is not None:
            stmt = stmt.where(AuditEvent.at >= self.since)
        if self.until is not None:
            stmt = stmt.where(AuditEvent.at < self.until)
        return stmt


def _escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


class AuditLog:
    """Writes audit events; searches them for ``/api/audit``; verifies their chain."""

    def __init__(self, db: Database, *, flush_interval: float = 0.2) -> None:
        self._db = db
        self._interval = flush_interval
        self._idle = threading.Condition()
        self._events: list[dict[str, Any]] = []
        self._pending = 0
        self._waiting = threading.Event()  # set while events wait for the writer
        self._hurry = threading.Event()  # set by flush(): write without gathering more
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def record(self, origin: Origin, action: str, outcome: str, **fields: Any) -> None:
        """Queue a read event; it is written within about ``flush_interval`` seconds.

        Only the first event of a batch wakes the writer thread. Waking it for every
        event (as a ``queue.Queue`` does) handed it the GIL in the middle of each C-FIND,
        a quarter of the handler's time for a two-match query.
        """
        event = event_values(origin, action, outcome, **fields)
        with self._idle:
            self._pending += 1
            self._events.append(event)
            first = len(self._events) == 1
        self._ensure_thread()
        if first:
            self._waiting.set()

    def _ensure_thread(self) -> None:
        if self._thread is not None and self._thread.is_alive():
            return
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="audit-writer",
                                                daemon=True)
                self._thread.start()

    def _run(self) -> None:
        while True:
            self._waiting.wait()
            # Gather what else arrives in the interval into the same transaction.
            self._hurry.wait(self._interval)
            with self._idle:
                events, self._events = self._events, []
                self._waiting.clear()
            for start in range(0, len(events), 500):
                batch = events[start:start + 500]
                try:
                    with self._db.write_connection() as conn:
                        append_events(conn, batch)
                except Exception:  # the writer must survive a database outage
                    log.exception("audit: %d event(s) could not be written", len(batch))
            with self._idle:
                self._pending -= len(events)
                if self._pending <= 0:
                    self._hurry.clear()
                self._idle.notify_all()

    def flush(self, timeout: float = 10.0) -> None:
        """Wait until every queued event is written."""
        with self._idle:
            if self._pending <= 0:
                return
            self._hurry.set()
            self._idle.wait_for(lambda: self._pending <= 0, timeout=timeout)

    def events(self, *, action: str | None = None, limit: int = 1000) -> list[AuditEvent]:
        """The newest events first (optionally of one ``action``)."""
        return self.search(AuditFilter(action=action or ""), limit=limit)

    def search(self, where: AuditFilter, *, limit: int = 1000, offset: int = 0,
               newest_first: bool = True) -> list[AuditEvent]:
        """One page of the events ``where`` selects."""
        order = AuditEvent.seq.desc() if newest_first else AuditEvent.seq
        stmt = where.apply(select(AuditEvent)).order_by(order).limit(limit).offset(offset)
        with self._db.read() as session:
            return list(session.scalars(stmt))

    def iter_search(self, where: AuditFilter, *, limit: int | None = None,
                    newest_first: bool = True) -> Iterator[AuditEvent]:
        """Every event ``where`` selects, streamed (for CSV export)."""
        order = AuditEvent.seq.desc() if newest_first else AuditEvent.seq
        stmt = where.apply(select(AuditEvent)).order_by(order).limit(limit)
        with self._db.read() as session:
            yield from session.scalars(stmt.execution_options(yield_per=1000))

    def verify(self) -> audit_chain.ChainReport:
        """Walk the hash chain (:func:`storage.audit_chain.verify`)."""
        self.flush()
        return audit_chain.verify(self._db)
