"""The ingest statements run on the DBAPI cursor (storage.index.direct) write exactly the
rows, and the audit chain hashes, that SQLAlchemy's own execution writes."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Connection, event, insert, select
from sqlalchemy.exc import IntegrityError

from storage import audit_chain
from storage.dicomio import read_header
from storage.errors import IndexUnavailable
from storage.index.database import Database
from storage.index.direct import DirectStatement
from storage.index.migrate import upgrade
from storage.index.models import AuditEvent
from storage.index.writer import InstanceWriter, StoreOutcome
from storage.origin import Origin
from tests.support.data import StudySpec, make_study, write
from tests.support.pg import drop_database, fresh_database

ORIGIN = Origin(channel="dimse", calling_ae="MODALITY", called_ae="PACS",
                address="10.1.2.3:40000")
NOW = datetime(2026, 11, 23, 8, 30, 1, 234567)
TABLES = ("patients", "studies", "series", "instances", "revisions", "audit_events",
          "audit_chain")


@pytest.fixture(params=["sqlite", "postgresql"])
def twin_urls(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[str, str]]:
    """Two migrated, empty indexes on the same backend."""
    if request.param == "sqlite":
        urls = (f"sqlite:///{tmp_path / 'a.db'}", f"sqlite:///{tmp_path / 'b.db'}")
        for url in urls:
            upgrade(url)
        yield urls
        return
    template = request.getfixturevalue("pg_template")
    (a, url_a), (b, url_b) = fresh_database(template), fresh_database(template)
    yield url_a, url_b
    drop_database(a)
    drop_database(b)


def _dump(db: Database) -> dict[str, list[tuple[Any, ...]]]:
    """Every row as the driver returns it (on SQLite: datetimes as their stored text)."""
    with db.write_engine.connect() as conn:
        return {t: [tuple(r) for r in conn.exec_driver_sql(f"SELECT * FROM {t} ORDER BY 1")]
                for t in TABLES}


def _ingest(db: Database, files: list[Path], revised: Path) -> list[StoreOutcome]:
    writer = InstanceWriter(db)
    outcomes = []
    plan = [(f, f"k{i}") for i, f in enumerate(files)]
    plan += [(files[1], "dup"), (files[2], "rev")]  # an identical re-send, then a revision
    for path, key in plan:
        data = path.read_bytes()
        if key == "rev":
            data = revised.read_bytes()
        with open(path if key != "rev" else revised, "rb") as fh:
            header = read_header(fh)
        outcomes.append(writer.write(header, key, len(data), hashlib.sha256(data).hexdigest(),
                                     ORIGIN))
    return outcomes


def test_rows_and_chain_match_sqlalchemy_execution(twin_urls: tuple[str, str], tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("storage.index.writer.utcnow", lambda: NOW)
    monkeypatch.setattr("storage.audit.utcnow", lambda: NOW)
    datasets = make_study(StudySpec(series=2, instances=3))
    files = [write(ds, tmp_path / "in") for ds in datasets]
    changed = datasets[2].copy()
    changed.SeriesDescription = "CHANGED"
    revised = write(changed, tmp_path / "revised")

    direct, library = Database(twin_urls[0]), Database(twin_urls[1])
    # A cursor-execute listener sends every statement through SQLAlchemy's execution.
    event.listen(library.write_engine, "before_cursor_execute", lambda *a: None)
    calls: list[Any] = []
    real_execute = Connection.execute

    def counted(self: Connection, stmt: Any, *args: Any, **kw: Any) -> Any:
        calls.append(stmt)
        return real_execute(self, stmt, *args, **kw)

    try:
        monkeypatch.setattr(Connection, "execute", counted)
        expected = [StoreOutcome.STORED] * 6 + [StoreOutcome.DUPLICATE, StoreOutcome.REVISED]
        assert _ingest(direct, files, revised) == expected
        direct_calls = len(calls)
        assert _ingest(library, files, revised) == expected
        monkeypatch.setattr(Connection, "execute", real_execute)
        # The direct index ran only the once-per-series and rare statements through
        # Connection.execute: far fewer than the library path.
        assert direct_calls < (len(calls) - direct_calls) / 2
        rows = _dump(direct)
        assert rows == _dump(library)
        assert len(rows["instances"]) == 6 and len(rows["revisions"]) == 1
        assert len(rows["audit_events"]) == 8
        if direct.dialect == "sqlite":  # DateTime kept in SQLAlchemy's text format
            assert "2026-11-23 08:30:01.234567" in rows["audit_events"][0]
        assert audit_chain.verify(direct).intact and audit_chain.verify(library).intact
    finally:
        direct.dispose()
        library.dispose()


def _refuse_connection_execute(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make every statement sent through SQLAlchemy's ``Connection.execute`` fail."""

    def refuse(*_a: Any, **_kw: Any) -> Any:
        raise AssertionError("ran through Connection.execute")

    monkeypatch.setattr(Connection, "execute", refuse)


def test_known_series_runs_no_statement_through_sqlalchemy(
        database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A new instance of a series just stored: every statement on the DBAPI cursor."""
    files = [write(ds, tmp_path) for ds in make_study(StudySpec(series=1, instances=2))]
    db = Database(database_url)
    writer = InstanceWriter(db)
    try:
        headers = []
        for path in files:
            with open(path, "rb") as fh:
                headers.append(read_header(fh))
        writer.write(headers[0], "k0", 10, "0" * 64, ORIGIN)
        _refuse_connection_execute(monkeypatch)
        assert writer.write(headers[1], "k1", 10, "1" * 64, ORIGIN) is StoreOutcome.STORED
        monkeypatch.undo()
        assert audit_chain.verify(db).intact
    finally:
        db.dispose()


def test_new_study_runs_no_statement_through_sqlalchemy(
        database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A one-image study (most X-rays) creates its series, study and often its patient on
    every store: a new patient, then a known patient's new study, all on the DBAPI cursor."""
    first = make_study(StudySpec(series=1, instances=1, modality="DX"))
    second = make_study(StudySpec(series=1, instances=1, modality="DX", accession="A002"))
    db = Database(database_url)
    writer = InstanceWriter(db)
    try:
        headers = []
        for ds in first + second:
            with open(write(ds, tmp_path), "rb") as fh:
                headers.append(read_header(fh))
        _refuse_connection_execute(monkeypatch)
        for number, header in enumerate(headers):
            assert writer.write(header, f"k{number}", 10, f"{number}" * 64,
                                ORIGIN) is StoreOutcome.STORED
        monkeypatch.undo()
        with db.write_engine.connect() as conn:
            patients = conn.exec_driver_sql(
                "SELECT num_studies, num_series, num_instances FROM patients").all()
            studies = conn.exec_driver_sql(
                "SELECT modalities, num_series, num_instances FROM studies").all()
        assert [tuple(p) for p in patients] == [(2, 2, 2)]
        assert sorted(tuple(s) for s in studies) == [("\\DX\\", 1, 1)] * 2
        assert audit_chain.verify(db).intact
    finally:
        db.dispose()


def test_driver_errors_are_sqlalchemys(database_url: str) -> None:
    """A failing statement raises SQLAlchemy's wrapped error (IndexUnavailable at the
    Database edge) and the transaction is rolled back, as through Connection.execute."""
    db = Database(database_url)
    stmt = DirectStatement(insert(AuditEvent.__table__))
    row = dict(seq=1, at=NOW, channel="x", username="", role="", calling_ae="", called_ae="",
               address="", action="a", outcome="ok", patient_id="", study_uid="", detail="",
               prev_hash="0" * 64, hash="1" * 64)
    try:
        with pytest.raises(IndexUnavailable), db.write_connection() as conn:
            stmt.execute(conn, row)
            stmt.execute(conn, row)  # seq is unique
        with db.write_engine.connect() as conn:
            assert conn.execute(select(AuditEvent.__table__.c.seq)).first() is None
        with pytest.raises(IntegrityError), db.write_engine.begin() as conn:
            stmt.execute(conn, row)
            stmt.execute(conn, row)
    finally:
        db.dispose()
