"""Read events queued by many threads are all written, in batches, by the audit writer:
on their own within the flush interval, at once on flush(), and the chain stays intact."""

from __future__ import annotations

import threading
import time

from storage.audit import AuditLog
from storage.index.database import Database
from storage.origin import Origin

VIEWER = Origin(channel="dimse", calling_ae="VIEWER", address="10.0.0.9:104")


def _count(db: Database) -> int:
    log = AuditLog(db)
    return len(log.events(action="query", limit=10_000))


def test_events_from_many_threads_are_written_on_their_own(database_url: str) -> None:
    db = Database(database_url)
    audit = AuditLog(db, flush_interval=0.05)
    try:
        threads = [threading.Thread(target=lambda t=t: [
            audit.record(VIEWER, "query", "ok", patient_id=f"T{t}-{n}") for n in range(50)])
            for t in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        deadline = time.monotonic() + 10
        while _count(db) < 200 and time.monotonic() < deadline:
            time.sleep(0.05)  # no flush(): the writer wakes by itself
        assert _count(db) == 200
        report = audit.verify()
        assert report.intact and report.records == 200
    finally:
        db.dispose()


def test_flush_does_not_wait_for_the_interval(database_url: str) -> None:
    db = Database(database_url)
    audit = AuditLog(db, flush_interval=30.0)
    try:
        for n in range(20):
            audit.record(VIEWER, "query", "ok", patient_id=f"P{n}")
        started = time.monotonic()
        audit.flush(timeout=20)
        assert time.monotonic() - started < 5  # written at once, not after 30 s
        assert _count(db) == 20
        audit.record(VIEWER, "query", "ok", patient_id="P20")  # a new batch after a flush
        audit.flush(timeout=20)
        assert _count(db) == 21
    finally:
        db.dispose()
