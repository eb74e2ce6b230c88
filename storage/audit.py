"""The audit trail: one record per access to or change of patient data.

Changes (stores, revisions) are audited inside the transaction that makes them, so the
record and the change commit together. Reads (queries, retrievals) are queued and written
by one background thread in small batches, so a C-FIND does not wait for a disk flush;
:meth:`AuditLog.flush` drains the queue (at shutdown and in tests). Like dcm4chee's
asynchronous audit messages, this trades the last fraction of a second of read records
in a crash for query latency.
"""

from __future__ import annotations

import json
import logging
import queue
import threading
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import insert, select

from storage.index.database import Database
from storage.index.models import AuditEvent
from storage.origin import Origin

log = logging.getLogger(__name__)


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
    """The column values of one audit event (for Core inserts on the hot path)."""
    return dict(
        at=utcnow(),
        channel=origin.channel,
        username=origin.username,
        calling_ae=origin.calling_ae,
        called_ae=origin.called_ae,
        address=origin.address,
        action=action,
        outcome=outcome,
        patient_id=patient_id[:64],
        study_uid=study_uid[:64],
        detail=json.dumps(detail, separators=(",", ":"), default=str) if detail else "",
    )


AUDIT_INSERT = insert(AuditEvent.__table__)


class AuditLog:
    """Writes audit events; reads them back for ``/api/audit`` and tests."""

    def __init__(self, db: Database, *, flush_interval: float = 0.2) -> None:
        self._db = db
        self._queue: queue.Queue[dict[str, Any] | None] = queue.Queue()
        self._interval = flush_interval
        self._idle = threading.Condition()
        self._pending = 0
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def record(self, origin: Origin, action: str, outcome: str, **fields: Any) -> None:
        """Queue a read event; it is written within ``flush_interval`` seconds."""
        event = event_values(origin, action, outcome, **fields)
        with self._idle:
            self._pending += 1
        self._ensure_thread()
        self._queue.put(event)

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
            first = self._queue.get()
            batch = [first]
            while True:
                try:
                    batch.append(self._queue.get(timeout=self._interval / 4))
                except queue.Empty:
                    break
                if len(batch) >= 500:
                    break
            events = [e for e in batch if e is not None]
            try:
                if events:
                    with self._db.write_connection() as conn:
                        conn.execute(AUDIT_INSERT, events)
            except Exception:  # the writer must survive a database outage
                log.exception("audit: %d event(s) could not be written", len(events))
            with self._idle:
                self._pending -= len(events)
                self._idle.notify_all()

    def flush(self, timeout: float = 10.0) -> None:
        """Wait until every queued event is written."""
        with self._idle:
            self._idle.wait_for(lambda: self._pending <= 0, timeout=timeout)

    def events(self, *, action: str | None = None, limit: int = 1000) -> list[AuditEvent]:
        with self._db.read() as session:
            stmt = select(AuditEvent).order_by(AuditEvent.id.desc()).limit(limit)
            if action:
                stmt = stmt.where(AuditEvent.action == action)
            return list(session.scalars(stmt))
