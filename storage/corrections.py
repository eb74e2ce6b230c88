"""Corrected patient demographics in the index, and on the way out of the archive.

When the RIS learns better demographics (an ADT^A08 update, a merge, a study linked to its
order), the index is corrected: the patient and study columns that C-FIND and QIDO-RS
match on, and the stored JSON headers that ``/metadata`` and non-column return keys come
from. The stored objects keep their bytes as received; a study whose demographics were
corrected is marked (``studies.corrected_at``) and its objects get the index's values
applied when they are retrieved, as dcm4chee-arc coerces attributes at retrieve time.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from pydicom.datadict import dictionary_VR, tag_for_keyword
from pydicom.dataset import Dataset
from sqlalchemy import Connection, delete, select, update

from storage.audit import append_events, event_values, utcnow
from storage.dicomio import normalise_name
from storage.errors import NotFound
from storage.index.database import Database
from storage.index.dialects import insert_ignore
from storage.index.models import Instance, Patient, Series, Study
from storage.origin import Origin

_P, _S, _R, _I = (Patient.__table__, Study.__table__, Series.__table__, Instance.__table__)
UTF8 = "ISO_IR 192"


@dataclass(frozen=True)
class Demographics:
    """The patient attributes (PS3.3 C.7.1.1) a correction sets."""

    patient_id: str
    name: str = ""
    birth_date: str = ""
    sex: str = ""

    def elements(self) -> dict[str, str]:
        return {"PatientID": self.patient_id, "PatientName": self.name,
                "PatientBirthDate": self.birth_date, "PatientSex": self.sex}


def _json_element(keyword: str, value: str) -> dict[str, Any]:
    vr = dictionary_VR(tag_for_keyword(keyword))
    if not value:
        return {"vr": vr}
    if vr == "PN":
        return {"vr": vr, "Value": [{"Alphabetic": value}]}
    return {"vr": vr, "Value": [value]}


def apply_to_json(text: str, values: dict[str, str]) -> str:
    """The DICOM JSON header ``text`` with ``values`` set (PS3.18 F.2), UTF-8 declared
    when a value needs it (the JSON itself is Unicode)."""
    header = json.loads(text) if text else {}
    for keyword, value in values.items():
        header[f"{tag_for_keyword(keyword):08X}"] = _json_element(keyword, value)
    if not all(v.isascii() for v in values.values()):
        header["00080005"] = {"vr": "CS", "Value": [UTF8]}
    return json.dumps(dict(sorted(header.items())), separators=(",", ":"))


def coerce_dataset(ds: Dataset, values: Iterable[tuple[str, str]]) -> Dataset:
    """Set corrected attributes on a retrieved dataset; other elements are unchanged.

    Text values are decoded with the dataset's own character set first, so declaring
    UTF-8 afterwards (for a Vietnamese name) re-encodes them faithfully (PS3.5 6.1).
    """
    values = list(values)
    changes = [(k, v) for k, v in values if str(ds.get(k, "") or "") != v]
    if not changes:
        return ds
    ds.decode()
    for keyword, value in changes:
        setattr(ds, keyword, value)
    if not all(v.isascii() for _, v in changes):
        ds.SpecificCharacterSet = UTF8
    return ds


class Corrector:
    """Apply corrected demographics to the index, in one transaction per correction."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def correct_patient(self, demographics: Demographics, origin: Origin) -> int:
        """Correct every study of the patient ``demographics.patient_id``; return the
        number of instances whose header changed (0 when the patient has no images)."""
        with self._db.write_connection() as conn:
            patient_pk = conn.scalar(select(_P.c.id).where(
                _P.c.patient_id == demographics.patient_id))
            if patient_pk is None:
                return 0
            self._set_patient(conn, patient_pk, demographics)
            study_pks = list(conn.scalars(select(_S.c.id).where(_S.c.patient_fk == patient_pk)))
            n = self._rewrite(conn, study_pks, demographics.elements())
            append_events(conn, [event_values(
                origin, "correct", "ok", patient_id=demographics.patient_id,
                detail={"studies": len(study_pks), "instances": n})])
            return n

    def correct_study(self, study_uid: str, demographics: Demographics, origin: Origin, *,
                      accession_number: str | None = None,
                      instance_uid: str | None = None) -> int:
        """Give the study ``study_uid`` the patient ``demographics`` (moving it to that
        patient if the ID differs) and, if given, its order's accession number.

        With ``instance_uid`` only that instance's header is rewritten (a late arrival in
        a study already corrected). Returns the number of headers rewritten.

        Raises
        ------
        NotFound
            The study is not in the archive.
        """
        with self._db.write_connection() as conn:
            row = conn.execute(select(_S.c.id, _S.c.patient_fk, _S.c.num_series,
                                      _S.c.num_instances, _P.c.patient_id)
                               .join(_P, _S.c.patient_fk == _P.c.id)
                               .where(_S.c.study_uid == study_uid)).first()
            if row is None:
                raise NotFound("study is not in the archive")
            target = row.patient_fk
            if row.patient_id != demographics.patient_id:
                target = self._move(conn, row, demographics)
            self._set_patient(conn, target, demographics, only_study=row.id)
            values = demographics.elements()
            study_values: dict[str, Any] = {"corrected_at": utcnow()}
            if accession_number is not None:
                values["AccessionNumber"] = accession_number
                study_values["accession_number"] = accession_number
            conn.execute(update(_S).where(_S.c.id == row.id).values(**study_values))
            n = self._rewrite(conn, [row.id], values, instance_uid=instance_uid)
            append_events(conn, [event_values(
                origin, "correct", "ok", patient_id=demographics.patient_id,
                study_uid=study_uid, detail={"instances": n, "moved": target != row.patient_fk})])
            return n

    def _move(self, conn: Connection, row: Any, demographics: Demographics) -> int:
        """Move a study (with its counts) to the patient with the corrected ID."""
        now = utcnow()
        new_pk = conn.execute(insert_ignore(
            self._db.dialect, _P, patient_id=demographics.patient_id, patient_name="",
            patient_name_norm="", birth_date="", sex="", num_studies=0, num_series=0,
            num_instances=0, created_at=now)).scalar()
        if new_pk is None:
            new_pk = conn.scalar(select(_P.c.id).where(
                _P.c.patient_id == demographics.patient_id))
        for pk, sign in ((row.patient_fk, -1), (new_pk, +1)):
            conn.execute(update(_P).where(_P.c.id == pk).values(
                num_studies=_P.c.num_studies + sign,
                num_series=_P.c.num_series + sign * row.num_series,
                num_instances=_P.c.num_instances + sign * row.num_instances))
        conn.execute(update(_S).where(_S.c.id == row.id).values(patient_fk=new_pk))
        conn.execute(delete(_P).where(_P.c.id == row.patient_fk, _P.c.num_studies <= 0))
        return int(new_pk)

    @staticmethod
    def _set_patient(conn: Connection, patient_pk: int, d: Demographics, *,
                     only_study: int | None = None) -> None:
        conn.execute(update(_P).where(_P.c.id == patient_pk).values(
            patient_name=d.name, patient_name_norm=normalise_name(d.name),
            birth_date=d.birth_date[:8], sex=d.sex[:16]))
        stmt = update(_S).values(corrected_at=utcnow())
        stmt = stmt.where(_S.c.id == only_study) if only_study is not None else stmt.where(
            _S.c.patient_fk == patient_pk)
        conn.execute(stmt)

    @staticmethod
    def _rewrite(conn: Connection, study_pks: list[int], values: dict[str, str], *,
                 instance_uid: str | None = None) -> int:
        if not study_pks:
            return 0
        stmt = select(_I.c.id, _I.c.metadata_json).join(_R, _I.c.series_fk == _R.c.id).where(
            _R.c.study_fk.in_(study_pks))
        if instance_uid is not None:
            stmt = stmt.where(_I.c.sop_instance_uid == instance_uid)
        n = 0
        for pk, text in conn.execute(stmt).all():
            new = apply_to_json(text, values)
            if new != text:
                conn.execute(update(_I).where(_I.c.id == pk).values(metadata_json=new))
                n += 1
        return n
