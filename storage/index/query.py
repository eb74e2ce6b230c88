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

from sqlalchemy import Select, and_, bindparam, or_, select
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
#
# A matching key is first turned into *terms*: alternatives (OR) of conjunctions (AND) of
# ``(operator, value)``. The SQL is built from the terms with one named bound parameter per
# value, so every query of the same shape (which keys, which kind of matching) has the same
# statement and only the parameter values differ: :func:`shape` lets callers build that
# statement once and reuse it (no SQLAlchemy construction, cache-key walk or result
# re-mapping per query, about a millisecond of CPU each).

Term = tuple[str, Any]
"""``(operator, value)``: eq, ge, lt, le, like, in (a list) or nonempty (no value)."""


def _escape_like(value: str) -> str:
    return value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _wildcard(pattern: str) -> list[Term]:
    """``*``/``?`` → ``LIKE`` with escaping, plus a range on the literal prefix for the index."""
    like = "".join(
        "%" if ch == "*" else "_" if ch == "?" else _escape_like(ch) for ch in pattern
    )
    prefix = ""
    for ch in pattern:
        if ch in "*?":
            break
        prefix += ch
    if not prefix:
        return [("like", like)]
    upper = prefix[:-1] + chr(ord(prefix[-1]) + 1)
    return [("ge", prefix), ("lt", upper), ("like", like)]


def _range(value: str, kind: str) -> list[Term]:
    low, _, high = value.partition("-")
    low, high = low.strip(), high.strip()
    if kind == "date" and any(v and (len(v) != 8 or not v.isdigit()) for v in (low, high)):
        raise InvalidQuery("date range values must be YYYYMMDD")
    terms: list[Term] = []
    if low:
        terms.append(("ge", low))
    if high:
        if kind == "time" and "." not in high:
            # A time bound covers the whole of its last component: 1200 includes 12:00:59.
            high = high.ljust(6, "9") + ".999999"
        terms += [("le", high), ("nonempty", None)]
    return terms


def terms(attr: Attr, raw: str) -> list[list[Term]] | None:
    """The matching of ``attr`` against ``raw`` as alternatives of terms (``None`` =
    universal matching, PS3.4 C.2.2.2.3).

    Raises
    ------
    InvalidQuery
        A malformed UID, date range or integer (reported as 0xA900 / HTTP 400).
    """
    value = raw.strip()
    if value in ("", "*"):
        return None
    if attr.kind == "count":
        return None  # return keys only (PS3.4 C.6.1.1.5: not used for matching)
    if attr.kind == "uid":
        uids = [u.strip() for u in value.split("\\") if u.strip()]
        for u in uids:
            if not is_valid_uid(u) and "*" not in u and "?" not in u:
                raise InvalidQuery(f"{attr.keyword} holds a malformed UID")
        return [[("in", uids)]] if len(uids) > 1 else [[("eq", uids[0])]]
    if attr.kind == "modalities":
        return [[("like", "%" + _escape_like(f"\\{m}\\") + "%")]
                for m in value.split("\\") if m] or None
    alternatives = value.split("\\") if attr.kind != "pn" else [value]
    out: list[list[Term]] = []
    for alt in alternatives:
        if attr.kind in ("date", "time") and "-" in alt:
            out.append(_range(alt, attr.kind))
        elif attr.kind == "int":
            try:
                out.append([("eq", int(alt))])
            except ValueError as exc:
                raise InvalidQuery(f"{attr.keyword} must be an integer") from exc
        else:
            text = normalise_name(alt) if attr.kind == "pn" else alt
            out.append(_wildcard(text) if "*" in text or "?" in text else [("eq", text)])
    return out


def _param(name: str, value: Any) -> Any:
    return bindparam(name, value, expanding=isinstance(value, list))


def _sql(column: Any, op: str, param: Any) -> Any:
    if op == "eq":
        return column == param
    if op == "ge":
        return column >= param
    if op == "lt":
        return column < param
    if op == "le":
        return column <= param
    if op == "like":
        return column.like(param, escape="\\")
    if op == "in":
        return column.in_(param)
    return column != ""  # nonempty: an open-ended range never matches an empty value


def _clause(column: Any, alternatives: list[list[Term]], name: str) -> Any:
    """SQL for ``alternatives``, the value of term ``j`` of alternative ``i`` bound as
    ``{name}_{i}_{j}`` (the names :func:`_values` gives)."""
    ors = []
    for i, alt in enumerate(alternatives):
        ands = [_sql(column, op, _param(f"{name}_{i}_{j}", v) if op != "nonempty" else None)
                for j, (op, v) in enumerate(alt)]
        ors.append(ands[0] if len(ands) == 1 else and_(*ands))
    return ors[0] if len(ors) == 1 else or_(*ors)


def _values(alternatives: list[list[Term]], name: str, into: dict[str, Any]) -> None:
    for i, alt in enumerate(alternatives):
        for j, (op, v) in enumerate(alt):
            if op != "nonempty":
                into[f"{name}_{i}_{j}"] = v


def constraint(attr: Attr, raw: str) -> Any | None:
    """The SQL condition for matching ``attr`` against ``raw`` (``None`` = universal)."""
    alternatives = terms(attr, raw)
    return None if alternatives is None else _clause(attr.match, alternatives, attr.keyword)


def allowed(level: Level, keyword: str) -> bool:
    attr = ATTRS.get(keyword)
    return attr is not None and DEPTH[attr.level] <= DEPTH[level]


def _matching(query: Query) -> list[tuple[str, list[list[Term]]]]:
    """The keys of ``query`` that constrain its level, with their terms."""
    out = []
    for keyword, raw in query.filters.items():
        if not allowed(query.level, keyword):
            continue  # PS3.4 C.2.2.1.3: optional keys the SCP cannot match are ignored
        alternatives = terms(ATTRS[keyword], raw)
        if alternatives is not None:
            out.append((keyword, alternatives))
    return out


def shape(query: Query, *, cap: int) -> tuple[tuple[Any, ...], dict[str, Any]]:
    """What :func:`build_select` would make of ``query``: a hashable key, equal for every
    query whose statement differs only in bound values, and those values by name.

    ``conn.execute(stmt, values)`` runs any query of the same key on a statement built once
    (by :func:`build_select`) for the first of them.
    """
    matching = _matching(query)
    values: dict[str, Any] = {}
    for keyword, alternatives in matching:
        _values(alternatives, keyword, values)
    key = (query.level, cap if query.limit is None else min(cap, query.limit), query.offset,
           tuple((keyword, tuple(tuple(op for op, _v in alt) for alt in alternatives))
                 for keyword, alternatives in matching))
    return key, values


def build_select(query: Query, *, cap: int) -> Select[Any]:
    """The ``select`` of the entities (and their parents) matching ``query``.

    Rows are ``(Patient, Study?, Series?, Instance?)`` down to the query level, ordered by
    primary key so ``offset`` pages are stable; at most ``cap`` rows. Matching values are
    named bound parameters (see :func:`shape`).
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
    for keyword, alternatives in _matching(query):
        stmt = stmt.where(_clause(ATTRS[keyword].match, alternatives, keyword))
    leaf = entities[-1]
    stmt = stmt.order_by(leaf.id)
    limit = cap if query.limit is None else min(cap, query.limit)
    return stmt.offset(query.offset).limit(limit)
