"""Nothing acknowledged is ever lost: faults injected at each step of the store pipeline."""

from __future__ import annotations

import errno
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from pydicom import dcmread
from pynetdicom import AE
from sqlalchemy import event
from sqlalchemy.exc import OperationalError

from ris.services import Services
from storage.archive import StoreOutcome
from storage.origin import Origin
from storage.verify import Problem, verify
from tests.conftest import Listener
from tests.dicom import scu
from tests.support.data import StudySpec, make_study, real_file

ORIGIN = Origin(channel="dimse", calling_ae="TEST")


def _send(listener: Listener, path: Path) -> int:
    ds = dcmread(path)
    ae = AE("FAULTS")
    ae.add_requested_context(ds.SOPClassUID, ds.file_meta.TransferSyntaxUID)
    assoc = ae.associate(listener.host, listener.port, ae_title=listener.ae_title)
    assert assoc.is_established
    status = assoc.send_c_store(ds)
    assoc.release()
    return int(status.Status)


def test_index_failure_during_commit_gives_a700_and_leaves_nothing(
        listener: Listener) -> None:
    services = listener.services
    engine = services.db.write_engine

    def fail_commit(conn: object) -> None:
        raise OperationalError("COMMIT", {}, Exception("disk I/O error"))

    event.listen(engine, "commit", fail_commit)
    try:
        assert _send(listener, real_file("CT_small.dcm")) == 0xA700
    finally:
        event.remove(engine, "commit", fail_commit)
    assert services.archive.count()["instances"] == 0
    assert services.objects.keys() == []  # the object put before the commit was removed
    # The listener still serves, and the modality's retry succeeds.
    assert _send(listener, real_file("CT_small.dcm")) == 0x0000
    assert services.archive.count()["instances"] == 1
    assert list(verify(services.db, services.objects)) == []


def test_storage_failure_gives_a700_and_indexes_nothing(sqlite_listener: Listener,
                                                        tmp_path: Path) -> None:
    services = sqlite_listener.services
    root = Path(services.objects.url.removeprefix("file://"))
    moved = root.with_name("objects-away")
    root.rename(moved)
    root.write_bytes(b"")  # a file where the directory should be: every put fails
    try:
        assert _send(sqlite_listener, real_file("CT_small.dcm")) == 0xA700
        assert services.archive.count()["instances"] == 0
    finally:
        root.unlink()
        moved.rename(root)
    assert _send(sqlite_listener, real_file("CT_small.dcm")) == 0x0000


def test_fsync_failure_while_the_header_is_parsed_gives_a700(
        sqlite_listener: Listener, monkeypatch: pytest.MonkeyPatch) -> None:
    """The object is made durable (fsync, rename, directory fsync) in a helper thread
    while the header is parsed; if that fails, the store fails and nothing is indexed."""
    services = sqlite_listener.services
    synced: list[int] = []

    def failing_fsync(fd: int) -> None:
        synced.append(fd)
        raise OSError(errno.EIO, "Input/output error")

    monkeypatch.setattr("storage.objects.filesystem.os.fsync", failing_fsync)
    assert _send(sqlite_listener, real_file("CT_small.dcm")) == 0xA700
    assert synced  # the failure came from the object's fsync
    assert services.archive.count()["instances"] == 0
    assert services.objects.keys() == []
    monkeypatch.undo()
    assert _send(sqlite_listener, real_file("CT_small.dcm")) == 0x0000
    assert services.archive.count()["instances"] == 1


CRASH = """
import os, sys
from sqlalchemy import event
from storage import StorageSettings
from ris.services import build_services
from storage.origin import Origin
svc = build_services(StorageSettings(database_url=sys.argv[1], storage_url=sys.argv[2]))
if sys.argv[4] == "before-commit":
    event.listen(svc.db.write_engine, "commit", lambda conn: os._exit(17))
else:
    index = svc.archive._writer.write
    def index_then_die(*args, **kwargs):
        index(*args, **kwargs)
        os._exit(17)  # committed, but the peer never hears back
    svc.archive._writer.write = index_then_die
svc.archive.store(sys.argv[3], Origin(channel="dimse"))
"""


@pytest.mark.parametrize("moment", ["before-commit", "after-commit"])
def test_process_crash_mid_store(services: Services, tmp_path: Path, moment: str) -> None:
    """A crash between put and commit leaves an orphan object, never a row without object;
    a crash after commit leaves a complete, retrievable instance."""
    settings = services.settings
    proc = subprocess.run([sys.executable, "-c", CRASH, settings.database_url,
                           settings.storage_url, str(real_file("CT_small.dcm")), moment],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 17, proc.stderr
    findings = list(verify(services.db, services.objects))
    if moment == "before-commit":
        assert services.archive.count()["instances"] == 0
        assert [f.problem for f in findings] == [Problem.ORPHAN_OBJECT]
        assert services.archive.store(real_file("CT_small.dcm"), ORIGIN).outcome \
            is StoreOutcome.STORED
    else:
        assert findings == []
        assert services.archive.count()["instances"] == 1
        # The peer never got its answer and sends again: a no-op success.
        assert services.archive.store(real_file("CT_small.dcm"), ORIGIN).outcome \
            is StoreOutcome.DUPLICATE


def test_orphans_from_a_lost_index_commit_are_adopted(services: Services) -> None:
    """Power loss may take the index's last commits, never the fsynced objects: adopting
    the orphans gives back every instance."""
    archive = services.archive
    archive.store(real_file("CT_small.dcm"), ORIGIN)
    archive.store(real_file("MR_small.dcm"), ORIGIN)
    with services.db.write_connection() as conn:  # the commits the power loss took
        for table in ("audit_events", "instances", "series", "studies", "patients"):
            conn.exec_driver_sql(f"DELETE FROM {table}")
    archive._writer.forget()
    orphans = [f.object_key for f in verify(services.db, services.objects)]
    assert len(orphans) == 2
    assert {archive.adopt(key, ORIGIN) for key in orphans} == {StoreOutcome.STORED}
    assert list(verify(services.db, services.objects)) == []
    assert archive.count()["instances"] == 2


def test_object_failing_late_commits_nothing(listener: Listener,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """On PostgreSQL a received object's index row is written while the object is made
    durable (on SQLite only afterwards, not to lock the database meanwhile); if making
    it durable then fails, nothing is committed: no row, no object, and the same series
    is stored correctly afterwards (no cached keys of rows that were never committed)."""
    services = listener.services
    overlaps = services.db.dialect == "postgresql"
    rows_written = threading.Event()

    def note_insert(conn: object, cursor: object, statement: str, *args: object) -> None:
        if statement.lstrip().upper().startswith("INSERT INTO INSTANCES"):
            rows_written.set()

    def late_failing_sync(directory: Path) -> None:
        # After the rename: the object is in place when this fails.
        if overlaps:
            assert rows_written.wait(10), "the index row was not written during the put"
        else:
            assert not rows_written.is_set(), "SQLite was written before the put ended"
        raise OSError(errno.EIO, "Input/output error")

    engine = services.db.write_engine
    event.listen(engine, "after_cursor_execute", note_insert)
    monkeypatch.setattr("storage.objects.filesystem._sync_directory", late_failing_sync)
    first, second = make_study(StudySpec(series=1, instances=2))
    try:
        assert scu.store_datasets(listener, [first]) == [0xA700]
    finally:
        event.remove(engine, "after_cursor_execute", note_insert)
        monkeypatch.undo()
    assert rows_written.is_set() == overlaps
    assert services.archive.count() == {"patients": 0, "studies": 0, "series": 0,
                                        "instances": 0}
    assert services.objects.keys() == []
    assert scu.store_datasets(listener, [first, second]) == [0x0000, 0x0000]
    assert services.archive.count() == {"patients": 1, "studies": 1, "series": 1,
                                        "instances": 2}
    assert list(verify(services.db, services.objects)) == []
