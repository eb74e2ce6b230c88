"""Patients as the hospital registers them (ADT, REST): demographics, updates, merges.

The RIS patient list is the master: when demographics change, or two records are merged
(HL7 ADT^A40), the archive's index and headers are corrected to match
(:mod:`storage.corrections`), so C-FIND, QIDO-RS and retrieved objects show the
hospital's current values.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from ris._audit import audit_change
from ris.errors import InvalidAttributeValue, MissingAttribute, UnknownPatient
from ris.models import Order, RisPatient
from storage.archive import Archive
from storage.audit import AuditLog, utcnow
from storage.corrections import Demographics
from storage.dicomio import normalise_name
from storage.index.database import Database
from storage.index.query import ATTRS, Attr, Level, Query, constraint
from storage.origin import Origin

SEXES = {"", "M", "F", "O"}
STUDY_INSTANCE_UID = 0x0020000D
"""Patient's Sex (PS3.3 C.7.1.1); HL7 ``U``/``A``/``N`` are mapped to ``O``."""


@dataclass(frozen=True)
class PatientInfo:
    """One patient's demographics (DICOM conventions: PN with ``^``, DA as YYYYMMDD)."""

    patient_id: str
    name: str = ""
    birth_date: str = ""
    sex: str = ""
    issuer: str = ""
    address: str = ""
    phone: str = ""
    merged_into: str = ""

    def demographics(self) -> Demographics:
        return Demographics(self.patient_id, self.name, self.birth_date, self.sex)


def validated(info: PatientInfo) -> PatientInfo:
    """Check the values a DICOM header must be able to carry.

    Raises
    ------
    MissingAttribute, InvalidAttributeValue
    """
    pid = info.patient_id.strip()
    if not pid:
        raise MissingAttribute("patient ID is required")
    if len(pid) > 64 or "\\" in pid:
        raise InvalidAttributeValue("patient ID is at most 64 characters without '\\'")
    birth = info.birth_date.strip()[:8]
    if birth and (len(birth) != 8 or not birth.isdigit()):
        raise InvalidAttributeValue("birth date must be YYYYMMDD")
    sex = info.sex.strip().upper()[:1]
    sex = "O" if sex in ("U", "A", "N") else sex
    if sex not in SEXES:
        raise InvalidAttributeValue("sex must be M, F or O")
    return replace(info, patient_id=pid, name=info.name.strip(), birth_date=birth, sex=sex)


def _info(row: RisPatient) -> PatientInfo:
    return PatientInfo(row.patient_id, row.name, row.birth_date, row.sex, row.issuer,
                       row.address, row.phone, row.merged_into)


def find_row(session: Session, patient_id: str) -> RisPatient:
    row = session.scalar(select(RisPatient).where(RisPatient.patient_id == patient_id))
    if row is None:
        raise UnknownPatient("patient is not registered")
    return row


def upsert_row(session: Session, info: PatientInfo, origin: Origin) -> tuple[RisPatient, bool]:
    """Register or update ``info`` in ``session``; return the row and whether the
    demographics the archive shows changed."""
    now = utcnow()
    row = session.scalar(select(RisPatient).where(RisPatient.patient_id == info.patient_id))
    fields = {k: v for k, v in asdict(info).items() if k not in ("patient_id", "merged_into")}
    if row is None:
        row = RisPatient(patient_id=info.patient_id, name_norm=normalise_name(info.name),
                         merged_into="", created_at=now, updated_at=now, **fields)
        session.add(row)
        session.flush()
        audit_change(session, origin, "patient-register", patient_id=info.patient_id)
        return row, False
    before = _info(row).demographics()
    for key, value in fields.items():
        setattr(row, key, value)
    row.name_norm = normalise_name(info.name)
    row.updated_at = now
    audit_change(session, origin, "patient-update", patient_id=info.patient_id)
    return row, _info(row).demographics() != before


class Patients:
    """Register, update, read and merge patients."""

    def __init__(self, db: Database, audit: AuditLog, archive: Archive) -> None:
        self._db = db
        self._audit = audit
        self._archive = archive

    def register(self, info: PatientInfo, origin: Origin) -> PatientInfo:
        """Create the patient, or update their demographics (ADT^A01/A04/A08, REST).

        A change of name, birth date or sex is applied to the archive's studies of that
        patient ID as well.
        """
        info = validated(info)
        with self._db.write() as s:
            row, changed = upsert_row(s, info, origin)
            result = _info(row)
        if changed:
            self._archive.correct_patient(result.demographics(), origin)
        return result

    def get(self, patient_id: str, origin: Origin) -> PatientInfo:
        with self._db.read() as s:
            info = _info(find_row(s, patient_id.strip()))
        self._audit.record(origin, "patient-read", "ok", patient_id=info.patient_id)
        return info

    def search(self, origin: Origin, *, name: str = "", limit: int = 100,
               offset: int = 0) -> list[PatientInfo]:
        """Patients whose name starts with ``name`` (case-insensitive), by patient ID."""
        stmt = select(RisPatient).order_by(RisPatient.patient_id).limit(limit).offset(offset)
        if name.strip():
            attr = Attr("PatientName", ATTRS["PatientName"].level, "pn", RisPatient.name_norm)
            stmt = stmt.where(constraint(attr, name.strip().rstrip("*") + "*"))
        with self._db.read() as s:
            found = [_info(r) for r in s.scalars(stmt)]
        self._audit.record(origin, "patient-search", "ok",
                           detail={"name": bool(name), "results": len(found)})
        return found

    def merge(self, surviving_id: str, merged_id: str, origin: Origin) -> PatientInfo:
        """Merge ``merged_id`` into ``surviving_id`` (HL7 ADT^A40, IHE PAM).

        The merged patient's orders move to the survivor; the merged record stays, marked,
        so later messages naming it can be told apart; the archive's studies of the merged
        ID are moved to the survivor with its demographics.

        Raises
        ------
        UnknownPatient
            The surviving patient is not registered.
        InvalidAttributeValue
            Both IDs are the same.
        """
        surviving_id, merged_id = surviving_id.strip(), merged_id.strip()
        if not surviving_id or not merged_id:
            raise MissingAttribute("both the surviving and the merged patient ID are required")
        if surviving_id == merged_id:
            raise InvalidAttributeValue("a patient cannot be merged into itself")
        with self._db.write() as s:
            survivor = find_row(s, surviving_id)
            old = s.scalar(select(RisPatient).where(RisPatient.patient_id == merged_id))
            moved = 0
            if old is not None:
                moved = s.execute(update(Order).where(Order.patient_fk == old.id)
                                  .values(patient_fk=survivor.id)).rowcount
                old.merged_into = surviving_id
                old.updated_at = utcnow()
            audit_change(s, origin, "patient-merge", patient_id=surviving_id,
                         detail={"merged": merged_id, "orders": moved})
            result = _info(survivor)
        self._move_studies(merged_id, result, origin)
        return result

    def _move_studies(self, merged_id: str, survivor: PatientInfo, origin: Origin) -> None:
        studies = {str(m.get(STUDY_INSTANCE_UID)) for m in self._archive.find(
            Query(Level.STUDY, {"PatientID": merged_id}, ["StudyInstanceUID"]), origin)}
        for study_uid in studies:
            self._archive.correct_study(study_uid, survivor.demographics(), origin)
