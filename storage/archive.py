"""The archive service: store, find and locate instances. DIMSE and HTTP both call it.

The store pipeline keeps the promise "nothing acknowledged is ever lost" (STYLE.md):
parse the header only → validate → put the received bytes (durable) → commit the index
row with its audit record → only then report success. If indexing fails the new object is
removed again, so a crash can leave an orphan object (``pacs verify`` finds it) but never
an index row without its object.
"""

from __future__ import annotations

import enum
import logging
import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from pydicom import dcmread
from pydicom.dataset import Dataset
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from storage.audit import AuditLog, make_event, utcnow
from storage.dicomio import Header, normalise_name, read_header
from storage.errors import DatasetDoesNotMatchSopClass, PacsError
from storage.index import results
from storage.index.database import Database
from storage.index.dialects import insert_ignore
from storage.index.models import Instance, Patient, Revision, Series, Study
from storage.index.query import Level, Query, build_select
from storage.objects import ObjectStore
from storage.origin import Origin

log = logging.getLogger(__name__)


class StoreOutcome(enum.StrEnum):
    STORED = "stored"
    DUPLICATE = "duplicate"  # identical bytes already archived: a no-op success
    REVISED = "revised"  # different bytes under a known SOP Instance UID: new revision


@dataclass(frozen=True)
class StoreResult:
    outcome: StoreOutcome
    sop_instance_uid: str
    study_uid: str


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
                 *, find_limit: int = 1000) -> None:
        self.db = db
        self.objects = objects
        self.audit = audit
        self.find_limit = find_limit

    # -- store ------------------------------------------------------------------------------
    def store(self, path: str | Path, origin: Origin, *, sop_class_uid: str | None = None,
              sop_instance_uid: str | None = None) -> StoreResult:
        """Archive the Part 10 file at ``path`` (the caller keeps and removes the file).

        ``sop_class_uid`` / ``sop_instance_uid`` are the values the request announced
        (C-STORE Affected SOP Class/Instance UID); a dataset contradicting them is refused.

        Raises
        ------
        UnreadableDataset, DatasetDoesNotMatchSopClass
            Bad input; nothing is stored.
        StorageUnavailable, StorageFull, IndexUnavailable
            The archive cannot take it now; nothing is indexed.
        """
        try:
            header = read_header(path)
            if sop_instance_uid and header.sop_instance_uid != sop_instance_uid.strip():
                raise DatasetDoesNotMatchSopClass("SOP Instance UID differs from the request")
            if sop_class_uid and header.sop_class_uid != sop_class_uid.strip():
                raise DatasetDoesNotMatchSopClass("SOP Class UID differs from the request")
            key = new_object_key()
            size = os.path.getsize(path)
            with open(path, "rb") as fh:
                sha256 = self.objects.put(key, fh, size=size)
            try:
                outcome = self._index(header, key, size, sha256, origin)
            except BaseException:
                self._discard(key)
                raise
            if outcome is StoreOutcome.DUPLICATE:
                self._discard(key)
            return StoreResult(outcome, header.sop_instance_uid, header.study_uid)
        except PacsError as exc:
            self.audit.record(origin, "store", f"failed:{exc.code}")
            raise

    def _discard(self, key: str) -> None:
        try:
            self.objects.delete(key)
        except PacsError:
            log.warning("could not remove object %s; pacs verify will report it", key)

    def _upsert(self, s: Session, entity: Any, key: Any, value: str,
                **values: Any) -> tuple[int, bool]:
        """``(primary key, created)`` of the row whose ``key`` is ``value``."""
        new_id = s.execute(insert_ignore(self.db.dialect, entity, **{key.key: value},
                                         **values)).scalar()
        if new_id is not None:
            return int(new_id), True
        return int(s.execute(select(entity.id).where(key == value)).scalar_one()), False

    def _index(self, h: Header, key: str, size: int, sha256: str,
               origin: Origin) -> StoreOutcome:
        now = utcnow()
        patient_id = h.text("PatientID")[:64]
        with self.db.write() as s:
            existing = s.scalar(
                select(Instance).where(Instance.sop_instance_uid == h.sop_instance_uid))
            if existing is not None and existing.sha256 == sha256:
                s.add(make_event(origin, "store", "duplicate", patient_id=patient_id,
                                 study_uid=h.study_uid,
                                 detail={"sop_instance_uid": h.sop_instance_uid}))
                return StoreOutcome.DUPLICATE

            name = h.text("PatientName")
            patient_pk, new_patient = self._upsert(
                s, Patient, Patient.patient_id, patient_id, patient_name=name,
                patient_name_norm=normalise_name(name), birth_date=h.text("PatientBirthDate")[:8],
                sex=h.text("PatientSex")[:16], created_at=now,
                num_studies=0, num_series=0, num_instances=0)

            referring = h.text("ReferringPhysicianName")
            study_pk, new_study = self._upsert(
                s, Study, Study.study_uid, h.study_uid, patient_fk=patient_pk,
                study_date=h.text("StudyDate")[:8], study_time=h.text("StudyTime")[:16],
                accession_number=h.text("AccessionNumber")[:64], study_id=h.text("StudyID")[:16],
                description=h.text("StudyDescription")[:64],
                referring_physician_name=referring,
                referring_physician_norm=normalise_name(referring),
                institution_name=h.text("InstitutionName")[:64], modalities="\\",
                num_series=0, num_instances=0, size_bytes=0, created_at=now,
                updated_at=now)

            modality = h.text("Modality")[:16]
            series_pk, new_series = self._upsert(
                s, Series, Series.series_uid, h.series_uid, study_fk=study_pk, modality=modality,
                series_number=h.integer("SeriesNumber"),
                description=h.text("SeriesDescription")[:64],
                body_part=h.text("BodyPartExamined")[:16],
                station_name=h.text("StationName")[:16], series_date=h.text("SeriesDate")[:8],
                num_instances=0, created_at=now)

            values = dict(
                series_fk=series_pk, sop_class_uid=h.sop_class_uid,
                instance_number=h.integer("InstanceNumber"), rows=h.integer("Rows"),
                columns=h.integer("Columns"), number_of_frames=h.integer("NumberOfFrames"),
                transfer_syntax_uid=h.transfer_syntax_uid, object_key=key, size=size,
                sha256=sha256, received_at=now, calling_ae=origin.calling_ae[:16],
                source_address=origin.address[:64], metadata_json=h.metadata_json())
            if existing is None:
                s.add(Instance(sop_instance_uid=h.sop_instance_uid, revision=1, **values))
                outcome = StoreOutcome.STORED
            else:
                # PS3.4 B.4.1 leaves duplicates to the SCP: keep both, the newest wins.
                s.add(Revision(
                    sop_instance_uid=existing.sop_instance_uid, revision=existing.revision,
                    object_key=existing.object_key, size=existing.size,
                    sha256=existing.sha256, transfer_syntax_uid=existing.transfer_syntax_uid,
                    received_at=existing.received_at, superseded_at=now,
                    calling_ae=existing.calling_ae))
                self._count(s, existing.series_fk, -1, -existing.size)
                for field, value in values.items():
                    setattr(existing, field, value)
                existing.revision += 1
                s.flush()
                outcome = StoreOutcome.REVISED

            self._count(s, series_pk, +1, size)
            if new_series:
                s.execute(update(Study).where(Study.id == study_pk).values(
                    num_series=Study.num_series + 1))
                s.execute(update(Patient).where(Patient.id == patient_pk).values(
                    num_series=Patient.num_series + 1))
                if modality and "\\" not in modality:
                    s.execute(update(Study).where(
                        Study.id == study_pk,
                        Study.modalities.not_like(f"%\\{modality}\\%", escape="|")).values(
                        modalities=Study.modalities + f"{modality}\\"))
            if new_study:
                s.execute(update(Patient).where(Patient.id == patient_pk).values(
                    num_studies=Patient.num_studies + 1))
            s.add(make_event(
                origin, "store", outcome.value, patient_id=patient_id, study_uid=h.study_uid,
                detail={"sop_instance_uid": h.sop_instance_uid, "new_patient": new_patient}
                if outcome is StoreOutcome.STORED else
                {"sop_instance_uid": h.sop_instance_uid, "replaced_sha256": existing.sha256
                 if existing is not None else ""}))
        return outcome

    def _count(self, s: Session, series_pk: int, n: int, size: int) -> None:
        """Add ``n`` instances of ``size`` bytes to a series and its study and patient."""
        study_pk = s.execute(select(Series.study_fk).where(Series.id == series_pk)).scalar_one()
        patient_pk = s.execute(
            select(Study.patient_fk).where(Study.id == study_pk)).scalar_one()
        s.execute(update(Series).where(Series.id == series_pk).values(
            num_instances=Series.num_instances + n))
        s.execute(update(Study).where(Study.id == study_pk).values(
            num_instances=Study.num_instances + n, size_bytes=Study.size_bytes + size,
            updated_at=utcnow()))
        s.execute(update(Patient).where(Patient.id == patient_pk).values(
            num_instances=Patient.num_instances + n))

    # -- find -------------------------------------------------------------------------------
    def find(self, query: Query, origin: Origin) -> Iterator[Dataset]:
        """Yield one dataset per match, holding the requested keys; at most ``find_limit``.

        The query is audited (level and matching keys) before any match is returned.
        """
        keys = results.response_keys(query.level, query.return_keys)
        with_header = results.needs_header(query.level, keys)
        stmt = build_select(query, cap=self.find_limit)
        self.audit.record(origin, "query", "ok", patient_id=query.filters.get("PatientID", ""),
                          study_uid=query.filters.get("StudyInstanceUID", "")[:64],
                          detail={"level": query.level.value,
                                  "keys": {k: v for k, v in query.filters.items() if v}})
        with self.db.read() as s:
            for row in s.execute(stmt):
                header = self._header_for(s, query.level, row) if with_header else None
                yield results.build(query.level, tuple(row), keys, header)

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
