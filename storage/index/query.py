"""Query translation: DICOM matching keys → neutral constraints → SQLAlchemy ``select``.

One implementation serves C-FIND (PS3.4 C.2.2.2) and QIDO-RS (PS3.18 8.3.4): single value,
wildcard (``*``, ``?``), range (``A-B``, ``-B``, ``A-``), list of UIDs and universal
matching. Person names match case-insensitively on a normalised column. The caller's
identifier is read, never changed. Results are bounded and ordered for paging.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Select, and_, or_, select
from sqlalchemy.orm import InstrumentedAttribute

from storage.dicomio import is_valid_uid, normalise_name
from storage.errors import InvalidQuery
from storage.index.models import Instance, Patient, Series, Study


class Level(enum.StrEnum):
    """Query/Retrieve levels (PS3.4 C.3)."""

    PATIENT = "PATIENT"
    STUDY = "STUDY"
    SERIES = "SERIES"
    IMAGE = "IMAGE"


DEPTH = {Level.PATIENT: 0, Level.STUDY: 1, Level.SERIES: 2, Level.IMAGE: 3}
ENTITY: dict[Level, Any] = {
    Level.PATIENT: Patient, Level.STUDY: Study, Level.SERIES: Series, Level.IMAGE: Instance
}


@dataclass(frozen=True)
class Attr:
    """A matching / return key kept as an index column."""

    keyword: str
    level: Level
    kind: str  # uid | pn | date | time | text | int | modalities | count
    match: InstrumentedAttribute[Any]
    value: InstrumentedAttribute[Any] | None = None

    @property
    def source(self) -> InstrumentedAttribute[Any]:
        return self.value if self.value is not None else self.match


_P, _S, _R, _I = Level.PATIENT, Level.STUDY, Level.SERIES, Level.IMAGE
ATTRS: dict[str, Attr] = {a.keyword: a for a in [
    Attr("PatientID", _P, "text", Patient.patient_id),
    Attr("PatientName", _P, "pn", Patient.patient_name_norm, Patient.patient_name),
    Attr("PatientBirthDate", _P, "date", Patient.birth_date),
    Attr("PatientSex", _P, "text", Patient.sex),
    Attr("NumberOfPatientRelatedStudies", _P, "count", Patient.num_studies),
    Attr("NumberOfPatientRelatedSeries", _P, "count", Patient.num_series),
    Attr("NumberOfPatientRelatedInstances", _P, "count", Patient.num_instances),
    Attr("StudyInstanceUID", _S, "uid", Study.study_uid),
    Attr("StudyDate", _S, "date", Study.study_date),
    Attr("StudyTime", _S, "time", Study.study_time),
    Attr("AccessionNumber", _S, "text", Study.accession_number),
    Attr("StudyID", _S, "text", Study.study_id),
    Attr("StudyDescription", _S, "text", Study.description),
    Attr("ReferringPhysicianName", _S, "pn", Study.referring_physician_norm,
         Study.referring_physician_name),
    Attr("InstitutionName", _S, "text", Study.institution_name),
    Attr("ModalitiesInStudy", _S, "modalities", Study.modalities),
    Attr("NumberOfStudyRelatedSeries", _S, "count", Study.num_series),
    Attr("NumberOfStudyRelatedInstances", _S, "count", Study.num_instances),
    Attr("SeriesInstanceUID", _R, "uid", Series.series_uid),
    Attr("Modality", _R, "text", Series.modality),
    Attr("SeriesNumber", _R, "int", Series.series_number),
    Attr("SeriesDescription", _R, "text", Series.description),
    Attr("BodyPartExamined", _R, "text", Series.body_part),
    Attr("StationName", _R, "text", Series.station_name),
    Attr("SeriesDate", _R, "date", Series.series_date),
    Attr("NumberOfSeriesRelatedInstances", _R, "count", Series.num_instances),
    Attr("SOPInstanceUID", _I, "uid", Instance.sop_instance_uid),
    Attr("SOPClassUID", _I, "uid", Instance.sop_class_uid),
    Attr("InstanceNumber", _I, "int", Instance.instance_number),
    Attr("Rows", _I, "int", Instance.rows),
    Attr("Columns", _I, "int", Instance.columns),
    Attr("NumberOfFrames", _I, "int", Instance.number_of_frames),
]}

UNIQUE_KEY = {
    Level.PATIENT: "PatientID",
    Level.STUDY: "StudyInstanceUID",
    Level.SERIES: "SeriesInstanceUID",
    Level.IMAGE: "SOPInstanceUID",
}


@dataclass
class Query:
    """A level, matching values by keyword (``""`` = universal) and the keys to return."""

    level: Level
    filters: dict[str, str] = field(default_factory=dict)
    return_keys: Sequence[str] = ()
    limit: int | None = None
    offset: int = 0


# -- constraints ---------------------------------------------------------------------------

def _escape_like(value: str) -> str:
    return value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _wildcard(column: Any, pattern: str) -> Any:
    """``*``/``?`` → ``LIKE`` with escaping, plus a range on the literal prefix for the index."""
    like = "".join(
        "%" if ch == "*" else "_" if ch == "?" else _escape_like(ch) for ch in pattern
    )
    clauses = [column.like(like, escape="\\")]
    prefix = ""
    for ch in pattern:
        if ch in "*?":
            break
        prefix += ch
    if prefix:
        upper = prefix[:-1] + chr(ord(prefix[-1]) + 1)
        clauses[:0] = [column >= prefix, column < upper]
    return and_(*clauses)


def _range(column: Any, value: str, kind: str) -> Any:
    low, _, high = value.partition("-")
    low, high = low.strip(), high.strip()
    if kind == "date" and any(v and (len(v) != 8 or not v.isdigit()) for v in (low, high)):
        raise InvalidQuery("date range values must be YYYYMMDD")
    clauses = []
    if low:
        clauses.append(column >= low)
    if high:
        if kind == "time" and "." not in high:
            # A time bound covers the whole of its last component: 1200 includes 12:00:59.
            high = high.ljust(6, "9") + ".999999"
        clauses += [column <= high, column != ""]
    return and_(*clauses)


def constraint(attr: Attr, raw: str) -> Any | None:
    """The SQL condition for matching ``attr`` against ``raw`` (``None`` = universal)."""
    value = raw.strip()
    if value in ("", "*"):
        return None
    column = attr.match
    if attr.kind == "count":
        return None  # return keys only (PS3.4 C.6.1.1.5: not used for matching)
    if attr.kind == "uid":
        uids = [u.strip() for u in value.split("\\") if u.strip()]
        for u in uids:
            if not is_valid_uid(u) and "*" not in u and "?" not in u:
                raise InvalidQuery(f"{attr.keyword} holds a malformed UID")
        return column.in_(uids) if len(uids) > 1 else column == uids[0]
    if attr.kind == "modalities":
        return or_(*[column.like("%" + _escape_like(f"\\{m}\\") + "%", escape="\\")
                     for m in value.split("\\") if m])
    alternatives = [v for v in value.split("\\")] if attr.kind != "pn" else [value]
    clauses = []
    for alt in alternatives:
        if attr.kind in ("date", "time") and "-" in alt:
            clauses.append(_range(column, alt, attr.kind))
        elif attr.kind == "int":
            try:
                clauses.append(column == int(alt))
            except ValueError as exc:
                raise InvalidQuery(f"{attr.keyword} must be an integer") from exc
        else:
            text = normalise_name(alt) if attr.kind == "pn" else alt
            if "*" in text or "?" in text:
                clauses.append(_wildcard(column, text))
            else:
                clauses.append(column == text)
    return clauses[0] if len(clauses) == 1 else or_(*clauses)


def allowed(level: Level, keyword: str) -> bool:
    attr = ATTRS.get(keyword)
    return attr is not None and DEPTH[attr.level] <= DEPTH[level]


def build_select(query: Query, *, cap: int) -> Select[Any]:
    """The ``select`` of the entities (and their parents) matching ``query``.

    Rows are ``(Patient, Study?, Series?, Instance?)`` down to the query level, ordered by
    primary key so ``offset`` pages are stable; at most ``cap`` rows.
    """
    depth = DEPTH[query.level]
    entities = [Patient, Study, Series, Instance][: depth + 1]
    stmt = select(*entities).select_from(entities[-1])
    if depth >= 3:
        stmt = stmt.join(Series, Instance.series_fk == Series.id)
    if depth >= 2:
        stmt = stmt.join(Study, Series.study_fk == Study.id)
    if depth >= 1:
        stmt = stmt.join(Patient, Study.patient_fk == Patient.id)
    for keyword, raw in query.filters.items():
        if not allowed(query.level, keyword):
            continue  # PS3.4 C.2.2.1.3: optional keys the SCP cannot match are ignored
        clause = constraint(ATTRS[keyword], raw)
        if clause is not None:
            stmt = stmt.where(clause)
    leaf = entities[-1]
    stmt = stmt.order_by(leaf.id)
    limit = cap if query.limit is None else min(cap, query.limit)
    return stmt.offset(query.offset).limit(limit)
