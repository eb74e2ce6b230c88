"""The audit trail's hash chain: intact under concurrent writers in several processes, and
an edit or deletion of a past record is found by ``pacs audit verify``."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from sqlalchemy import create_engine, text

from ris.services import Services
from storage.index.migrate import upgrade
from storage.origin import Origin
from tests.cli.helpers import clean_env, describe, run_pacs
from tests.support.data import real_file

READER = Origin(channel="http", address="10.0.0.7:5000", username="dr.an", role="referring")

WRITER = """
import os, sys, tempfile
from pydicom import dcmread
from pydicom.uid import generate_uid
from storage import StorageSettings
from ris.services import build_services
from storage.origin import Origin
svc = build_services(StorageSettings(database_url=sys.argv[1], storage_url=sys.argv[2]))
me = Origin(channel="dimse", calling_ae=f"W{sys.argv[3]}")
source, work = dcmread(sys.argv[5]), tempfile.mkdtemp()
for n in range(int(sys.argv[4])):
    svc.audit.record(me, "query", "ok", patient_id=f"P{n}", detail={"n": n})
    if n % 50 == 0:
        svc.audit.flush()
    if n % 10 == 0:  # a store appends its record in its own transaction
        source.SOPInstanceUID = generate_uid()
        source.save_as(os.path.join(work, f"{n}.dcm"))
        svc.archive.store(os.path.join(work, f"{n}.dcm"), me)
svc.close()
"""
RECORDS_PER_WRITER = 150
"""Records each WRITER process (and the test's own process) appends."""
STORES_PER_WRITER = RECORDS_PER_WRITER // 10
"""Stores of each WRITER process: one before every tenth record."""


def _fill(services: Services, n: int = 5) -> None:
    services.archive.store(real_file("CT_small.dcm"), READER)
    for i in range(n):
        services.audit.record(READER, "query", "ok", patient_id=f"PAT{i}", study_uid="1.2.3")
    services.audit.flush()


def _verify(services: Services, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    url = services.settings.database_url
    env = clean_env(PACS_DATABASE_URL=url, PACS_STORAGE_URL=services.settings.storage_url,
                    PACS_DATA_DIR=str(tmp_path / "data"))
    return run_pacs("audit", "verify", cwd=tmp_path, env=env)


def _sql(services: Services, statement: str) -> None:
    """Tampering as an intruder would: raw SQL, around the application."""
    engine = create_engine(services.settings.database_url)
    with engine.begin() as conn:
        conn.execute(text(statement))
    engine.dispose()


def test_records_are_chained_and_verify(services: Services) -> None:
    _fill(services)
    report = services.audit.verify()
    assert report.intact and report.records == 6, report
    events = sorted(services.audit.events(), key=lambda e: e.seq)
    assert [e.seq for e in events] == list(range(1, 7))
    assert all(b.prev_hash == a.hash for a, b in zip(events, events[1:], strict=False))
    assert events[0].prev_hash == "0" * 64
    assert {(e.username, e.role) for e in events} == {("dr.an", "referring")}


def test_an_edited_record_is_detected(services: Services, tmp_path: Path) -> None:
    _fill(services)
    assert _verify(services, tmp_path).returncode == 0
    _sql(services, "UPDATE audit_events SET outcome = 'denied' WHERE seq = 3")
    result = _verify(services, tmp_path)
    assert result.returncode == 1, describe(result)
    assert "record 3" in result.stdout and "modified" in result.stdout, describe(result)


def test_a_deleted_record_is_detected(services: Services, tmp_path: Path) -> None:
    _fill(services)
    _sql(services, "DELETE FROM audit_events WHERE seq = 4")
    result = _verify(services, tmp_path)
    assert result.returncode == 1, describe(result)
    assert "record 4 is missing" in result.stdout, describe(result)


def test_an_edit_and_a_deletion_report_the_first_break(services: Services,
                                                      tmp_path: Path) -> None:
    _fill(services)
    _sql(services, "UPDATE audit_events SET username = 'someone' WHERE seq = 2")
    _sql(services, "DELETE FROM audit_events WHERE seq = 5")
    result = _verify(services, tmp_path)
    assert result.returncode == 1
    assert "record 2 was modified" in result.stdout, describe(result)


def test_deleting_the_newest_records_is_detected(services: Services, tmp_path: Path) -> None:
    _fill(services)
    _sql(services, "DELETE FROM audit_events WHERE seq >= 5")
    result = _verify(services, tmp_path)
    assert result.returncode == 1
    assert "newest records deleted" in result.stdout, describe(result)


def test_a_rehashed_edit_is_still_detected(services: Services) -> None:
    """Recomputing the edited record's own hash does not help: the next one names it."""
    from storage.audit_chain import chain_hash

    _fill(services)
    (row,) = [e for e in services.audit.events() if e.seq == 3]
    record = {c: getattr(row, c) for c in ("seq", "at", "channel", "username", "role",
                                           "calling_ae", "called_ae", "address", "action",
                                           "patient_id", "study_uid", "detail")}
    record["outcome"] = "denied"
    forged = chain_hash(row.prev_hash, record)
    _sql(services, f"UPDATE audit_events SET outcome = 'denied', hash = '{forged}' "
                   "WHERE seq = 3")
    report = services.audit.verify()
    assert report.broken_at == 4, report


def test_concurrent_processes_keep_one_chain(services: Services, tmp_path: Path) -> None:
    """Several DICOM worker processes append at once, storing and querying: the chain has
    no fork and no gap."""
    files = ["CT_small.dcm", "MR_small.dcm", "rtdose.dcm"]
    procs = [subprocess.Popen([sys.executable, "-c", WRITER, services.settings.database_url,
                               services.settings.storage_url, str(i), str(RECORDS_PER_WRITER),
                               str(real_file(name))],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for i, name in enumerate(files)]
    for n in range(RECORDS_PER_WRITER):  # and this process too
        services.audit.record(READER, "metadata", "ok", detail={"n": n})
    services.audit.flush()
    for proc in procs:
        _, err = proc.communicate(timeout=240)
        assert proc.returncode == 0, err
    report = services.audit.verify()
    assert report.intact, report
    assert report.records == (len(procs) + 1) * RECORDS_PER_WRITER + len(procs) * STORES_PER_WRITER
    assert services.archive.count()["instances"] == len(procs) * STORES_PER_WRITER


def test_a_store_begins_a_chain_whose_head_row_is_missing(services: Services) -> None:
    """A schema made without the migration's head row: the first store's record begins
    the chain (on PostgreSQL in the statement that hashes it, on SQLite in Python)."""
    _sql(services, "DELETE FROM audit_events")
    _sql(services, "DELETE FROM audit_chain")
    services.archive.store(real_file("CT_small.dcm"), READER)
    report = services.audit.verify()
    assert report.intact and report.records == 1, report


def test_records_from_before_the_chain_are_chained_by_the_migration(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'old.db'}"
    upgrade(url, "0001")
    engine = create_engine(url)
    with engine.begin() as conn:
        for n in range(3):
            conn.execute(text(
                "INSERT INTO audit_events (at, channel, username, calling_ae, called_ae, "
                "address, action, outcome, patient_id, study_uid, detail) VALUES "
                f"('2026-01-0{n + 1} 10:00:00.000000', 'dimse', '', 'CT1', 'PACS', "
                f"'10.0.0.1:4000', 'store', 'stored', 'P{n}', '1.2.{n}', '')"))
    engine.dispose()
    upgrade(url)
    from ris.services import build_services
    from storage import StorageSettings

    services = build_services(StorageSettings(database_url=url,
                                              storage_url=f"file://{tmp_path / 'o'}"))
    try:
        services.audit.record(READER, "query", "ok")
        report = services.audit.verify()
        assert report.intact and report.records == 4, report
    finally:
        services.close()
