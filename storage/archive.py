"""The archive service: store, find and locate instances. DIMSE and HTTP both call it.

The store pipeline keeps the promise "nothing acknowledged is ever lost" (STYLE.md):
parse the header only → validate → put the received bytes (durable) → commit the index
row with its audit record → only then report success. If indexing fails the new object is
removed again, so a crash can leave an orphan object (``pacs verify`` finds it) but never
an index row without its object.
"""

from __future__ import annotations

import hashlib
import logging
import os
import tempfile
import uuid
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from pydicom import dcmread
from pydicom.dataset import Dataset
from sqlalchemy import func, select
from sqlalchemy.orm import Session, defer

from storage import metrics
from storage.audit import AuditLog
from storage.dicomio import read_header
from storage.errors import DatasetDoesNotMatchSopClass, PacsError
from storage.index import results
from storage.index.database import Database
from storage.index.models import Instance, Patient, Series, Study
from storage.index.query import Level, Query, build_select
from storage.index.writer import InstanceWriter, StoreOutcome
from storage.objects import ObjectStore
from storage.origin import Origin

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class StoreResult:
    outcome: StoreOutcome
    sop_class_uid: str
    sop_instance_uid: str
    study_uid: str
    series_uid: str


@dataclass(frozen=True)
class InstanceRef:
    """Where one archived instance is, for retrieval."""

    sop_class_uid: str
    sop_instance_uid: str
    transfer_syntax_uid: str
    object_key: str
    size: int


def new_object_key() -> str:
    """Opaque keys with two fan-out levels; no patient data, no UID hierarchy."""
    h = uuid.uuid4().hex
    return f"{h[:2]}/{h[2:4]}/{h}.dcm"


class Archive:
    """Store, find, locate and read instances."""

    def __init__(self, db: Database, objects: ObjectStore, audit: AuditLog,
                 *, find_limit: int = 10_000) -> None:
        self.db = db
        self.objects = objects
        self.audit = audit
        self.find_limit = find_limit
        self._writer = InstanceWriter(db)
        self._io = ThreadPoolExecutor(max_workers=32, thread_name_prefix="object-put")

    # -- store ------------------------------------------------------------------------------
    def store(self, path: str | Path, origin: Origin, *, sop_class_uid: str | None = None,
              sop_instance_uid: str | None = None, study_uid: str | None = None) -> StoreResult:
        """Archive the Part 10 file at ``path`` (the caller keeps and removes the file).

        ``sop_class_uid`` / ``sop_instance_uid`` are the values the request announced
        (C-STORE Affected SOP Class/Instance UID), ``study_uid`` the study a STOW-RS URL
        names (PS3.18 10.5.1.1); a dataset contradicting them is refused.

        Raises
        ------
        UnreadableDataset, DatasetDoesNotMatchSopClass
            Bad input; nothing is stored.
        StorageUnavailable, StorageFull, IndexUnavailable
            The archive cannot take it now; nothing is indexed.
        """
        with metrics.timed("store"):
            result, size = self._store(path, origin, sop_class_uid, sop_instance_uid,
                                       study_uid)
        metrics.stored(result.outcome.value, size)
        return result

    def _store(self, path: str | Path, origin: Origin, sop_class_uid: str | None,
               sop_instance_uid: str | None,
               study_uid: str | None) -> tuple[StoreResult, int]:
        key = new_object_key()
        # The object is written (and fsynced) in a helper thread while this one parses the
        # header: the disk wait and the parsing overlap. The index is written only once
        # both are done, so success still means durable AND indexed.
        put = self._io.submit(self._put_file, key, path)
        try:
            try:
                header = read_header(path)
                if sop_instance_uid and header.sop_instance_uid != sop_instance_uid.strip():
                    raise DatasetDoesNotMatchSopClass(
                        "SOP Instance UID differs from the request")
                if sop_class_uid and header.sop_class_uid != sop_class_uid.strip():
                    raise DatasetDoesNotMatchSopClass("SOP Class UID differs from the request")
                if study_uid and header.study_uid != study_uid.strip():
                    raise DatasetDoesNotMatchSopClass("Study Instance UID differs from the request")
                header.metadata_json()  # built here, in parallel with the disk wait
            except BaseException:
                self._abandon(put, key)
                raise
            size, sha256 = put.result()
            try:
                outcome = self._writer.write(header, key, size, sha256, origin)
            except BaseException:
                self._discard(key)
                raise
            if outcome is StoreOutcome.DUPLICATE:
                self._discard(key)
            return StoreResult(outcome, header.sop_class_uid, header.sop_instance_uid,
                               header.study_uid, header.series_uid), size
        except PacsError as exc:
            self.audit.record(origin, "store", "failed", detail={"error": exc.code})
            raise

    def _put_file(self, key: str, path: str | Path) -> tuple[int, str]:
        size = os.path.getsize(path)
        with open(path, "rb") as fh:
            return size, self.objects.put(key, fh, size=size)

    def _abandon(self, put: Future[tuple[int, str]], key: str) -> None:
        """Wait for a put whose dataset was refused, then remove what it wrote."""
        try:
            put.result()
        except PacsError:
            return
        self._discard(key)

    def adopt(self, key: str, origin: Origin) -> StoreOutcome:
        """Index an object that is in storage without an index row (``pacs verify --repair``).

        Objects are made durable before the index commits, so after a power loss the index
        may lack the last rows but the objects are there: adopting them restores every
        acknowledged instance. An orphan identical to an indexed object is removed.
        """
        digest = hashlib.sha256()
        with tempfile.NamedTemporaryFile(suffix=".dcm") as tmp:
            with self.objects.open(key) as fh:
                while chunk := fh.read(1 << 20):
                    digest.update(chunk)
                    tmp.write(chunk)
            tmp.flush()
            header = read_header(tmp.name)
            outcome = self._writer.write(header, key, tmp.tell(), digest.hexdigest(), origin)
        if outcome is StoreOutcome.DUPLICATE:
            self._discard(key)
        return outcome

    def _discard(self, key: str) -> None:
        try:
            self.objects.delete(key)
        except PacsError:
            log.warning("could not remove object %s; pacs verify will report it", key)

    # -- find -------------------------------------------------------------------------------
    def find(self, query: Query, origin: Origin, *,
             encoding: tuple[bool, bool] | None = None) -> Iterator[Dataset]:
        """Yield one dataset per match, holding the requested keys; at most ``find_limit``.

        ``encoding`` (implicit VR, little endian) is the transfer syntax the matches will be
        sent in, if known: their index values are then pre-encoded for it.

        The query is audited (level and matching keys) before any match is returned.
        """
        with metrics.timed("find"):
            yield from self._find(query, origin, encoding)

    def _find(self, query: Query, origin: Origin,
              encoding: tuple[bool, bool] | None) -> Iterator[Dataset]:
        keys = results.response_keys(query.level, query.return_keys)
        with_header = results.needs_header(query.level, keys)
        stmt = build_select(query, cap=self.find_limit)
        if query.level == Level.IMAGE and not with_header:
            # The JSON header is the bulk of an instance row; leave it unread when every
            # requested key is an index column.
            stmt = stmt.options(defer(Instance.metadata_json))
        self.audit.record(origin, "query", "ok", patient_id=query.filters.get("PatientID", ""),
                          study_uid=query.filters.get("StudyInstanceUID", "")[:64],
                          detail={"level": query.level.value,
                                  "keys": {k: v for k, v in query.filters.items() if v}})
        with self.db.read() as s:
            for row in s.execute(stmt):
                header = self._header_for(s, query.level, row) if with_header else None
                yield results.build(query.level, tuple(row), keys, header, encoding)

    def _header_for(self, s: Session, level: Level, row: Any) -> str | None:
        if level == Level.IMAGE:
            return str(row[3].metadata_json)
        stmt = select(Instance.metadata_json).join(Series, Instance.series_fk == Series.id)
        if level == Level.SERIES:
            stmt = stmt.where(Series.id == row[2].id)
        elif level == Level.STUDY:
            stmt = stmt.where(Series.study_fk == row[1].id)
        else:
            stmt = stmt.join(Study, Series.study_fk == Study.id).where(
                Study.patient_fk == row[0].id)
        return s.scalar(stmt.limit(1))

    # -- retrieve ---------------------------------------------------------------------------
    def locate(self, query: Query, origin: Origin, *, action: str = "retrieve",
               destination: str = "") -> list[InstanceRef]:
        """Every instance below the entities ``query`` matches (C-MOVE, C-GET, WADO)."""
        with metrics.timed("locate"):
            return self._locate(query, origin, action, destination)

    def _locate(self, query: Query, origin: Origin, action: str,
                destination: str) -> list[InstanceRef]:
        instance_query = Query(Level.IMAGE, dict(query.filters))
        stmt = build_select(instance_query, cap=10_000_000).with_only_columns(
            Instance.sop_class_uid, Instance.sop_instance_uid, Instance.transfer_syntax_uid,
            Instance.object_key, Instance.size, maintain_column_froms=True)
        with self.db.read() as s:
            refs = [InstanceRef(*row) for row in s.execute(stmt)]
        self.audit.record(origin, action, "ok",
                          patient_id=query.filters.get("PatientID", ""),
                          study_uid=query.filters.get("StudyInstanceUID", "")[:64],
                          detail={"level": query.level.value, "instances": len(refs),
                                  "destination": destination,
                                  "keys": {k: v for k, v in query.filters.items() if v}})
        return refs

    def metadata(self, query: Query, origin: Origin) -> Iterator[str]:
        """The DICOM JSON header of every instance below what ``query`` matches.

        Yields each instance's stored header (PS3.18 F.2, without bulk data) as a JSON
        object text, in index order, straight from the index: WADO-RS ``/metadata``
        (PS3.18 10.4) never reads object storage (STYLE.md anti-pattern 5). The read is
        audited before the first header is returned.
        """
        instance_query = Query(Level.IMAGE, dict(query.filters))
        stmt = build_select(instance_query, cap=10_000_000).with_only_columns(
            Instance.metadata_json, maintain_column_froms=True
        ).execution_options(yield_per=500)
        self.audit.record(origin, "metadata", "ok",
                          patient_id=query.filters.get("PatientID", ""),
                          study_uid=query.filters.get("StudyInstanceUID", "")[:64],
                          detail={"level": query.level.value,
                                  "keys": {k: v for k, v in query.filters.items() if v}})
        with self.db.read() as s:
            for (text,) in s.execute(stmt):
                yield str(text)

    def open(self, ref: InstanceRef) -> BinaryIO:
        return self.objects.open(ref.object_key)

    def read_dataset(self, ref: InstanceRef) -> Dataset:
        """The archived object as a dataset (pixel data kept encoded, never decoded)."""
        with self.open(ref) as fh:
            return dcmread(fh, force=True)

    def count(self) -> dict[str, int]:
        with self.db.read() as s:
            return {
                "patients": s.scalar(select(func.count(Patient.id))) or 0,
                "studies": s.scalar(select(func.count(Study.id))) or 0,
                "series": s.scalar(select(func.count(Series.id))) or 0,
                "instances": s.scalar(select(func.count(Instance.id))) or 0,
            }
