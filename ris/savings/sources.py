"""Where the savings report reads its facts: the index, the audit trail, the printed marks.

Two seams are named here for the integrator:

* :class:`OrderAttributes` — the department and referring physician of a study. Today they
  come from the study's own DICOM attributes (InstitutionalDepartmentName (0008,1040) in
  the stored header, ReferringPhysicianName (0008,0090) in the index); once RIS orders
  exist, an implementation backed by the order matched by Accession Number overrides them.
* :data:`DELIVERY_ACTIONS` — the audit actions that count as a digital delivery of a study.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Protocol

from sqlalchemy import and_, case, func, or_, select
from sqlalchemy.orm import Session

from ris.savings.models import PrintedExam
from storage.index.models import AuditEvent, Instance, Series, Study

DELIVERY_ACTIONS: tuple[str, ...] = ("retrieve", "frames", "render", "move", "get",
                                     "share_open", "report-view")
"""Audit actions meaning "someone looked at this study without film": WADO-RS and
WADO-URI retrievals, frames and rendered previews (a viewer), C-MOVE and C-GET by a
viewing station (PS3.4 C.4.2, C.4.3), a report read, and, once they exist, openings of a
share link."""

_DEPARTMENT_TAG = "00081040"  # InstitutionalDepartmentName, PS3.3 C.7.5.1
_CHUNK = 500


class OrderAttributes(Protocol):
    """Seam: department and referring physician of studies, from their RIS orders.

    Returns ``{study_uid: (department, referring)}`` for the studies it knows; an empty
    string leaves the study's indexed value in place.
    """

    def attributes(self, study_uids: Sequence[str]) -> dict[str, tuple[str, str]]: ...


class NoOrders:
    """No RIS orders yet: every study keeps its own DICOM attributes."""

    def attributes(self, study_uids: Sequence[str]) -> dict[str, tuple[str, str]]:
        return {}


@dataclass
class StudyFacts:
    """What the report needs of one archived study (no patient data)."""

    pk: int
    study_uid: str
    exam_date: date
    received_at: datetime
    referring: str
    institution: str
    size_bytes: int
    department: str = ""
    images_by_series: list[tuple[str, int]] = field(default_factory=list)
    printed_sheets: list[tuple[int, str]] = field(default_factory=list)
    delivered: bool = False

    @property
    def images(self) -> int:
        return sum(n for _, n in self.images_by_series)

    @property
    def primary_modality(self) -> str:
        """The modality with the most images (a CT with its SR and PR is a CT study)."""
        totals: dict[str, int] = {}
        for modality, n in self.images_by_series:
            totals[modality] = totals.get(modality, 0) + n
        if not totals:
            return ""
        return min(totals, key=lambda m: (-totals[m], m))


def parse_da(value: str) -> date | None:
    """A DICOM DA value (PS3.5 6.2, ``YYYYMMDD``) as a date, or ``None`` if malformed."""
    try:
        return datetime.strptime(value.strip(), "%Y%m%d").date()
    except ValueError:
        return None


def period_filter(start: date, end: date):  # type: ignore[no-untyped-def]
    """Studies whose exam date (StudyDate, else the day they arrived) is in the period."""
    day_after = datetime.combine(end + timedelta(days=1), datetime.min.time())
    return or_(
        Study.study_date.between(start.strftime("%Y%m%d"), end.strftime("%Y%m%d")),
        and_(Study.study_date == "", Study.created_at >= datetime.combine(
            start, datetime.min.time()), Study.created_at < day_after),
    )


def load_studies(s: Session, start: date, end: date) -> list[StudyFacts]:
    """Every study of the period with its images per series, marks and deliveries."""
    stmt = select(Study.id, Study.study_uid, Study.study_date, Study.created_at,
                  Study.referring_physician_name, Study.institution_name,
                  Study.size_bytes).where(period_filter(start, end)).order_by(Study.id)
    facts: dict[int, StudyFacts] = {}
    for pk, uid, da, created, referring, institution, size in s.execute(stmt):
        facts[pk] = StudyFacts(pk, uid, parse_da(da) or created.date(), created,
                               referring or "", institution or "", int(size or 0))
    if not facts:
        return []
    period = select(Study.id).where(period_filter(start, end)).scalar_subquery()
    # Images: instances with pixel data (Rows present), each frame of a multi-frame counts.
    images = func.sum(case((Instance.rows.is_not(None),
                            func.coalesce(Instance.number_of_frames, 1)), else_=0))
    stmt2 = (select(Series.study_fk, Series.modality, images)
             .join(Instance, Instance.series_fk == Series.id)
             .where(Series.study_fk.in_(period))
             .group_by(Series.id, Series.study_fk, Series.modality))
    for study_fk, modality, n in s.execute(stmt2):
        facts[study_fk].images_by_series.append((modality or "", int(n or 0)))
    by_uid = {f.study_uid: f for f in facts.values()}
    uids = select(Study.study_uid).where(period_filter(start, end)).scalar_subquery()
    marks = select(PrintedExam.study_uid, PrintedExam.sheets, PrintedExam.sheet_size).where(
        PrintedExam.study_uid.in_(uids)).order_by(PrintedExam.id)
    for uid, sheets, size in s.execute(marks):
        by_uid[uid].printed_sheets.append((int(sheets), size))
    delivered = select(AuditEvent.study_uid).where(
        AuditEvent.action.in_(DELIVERY_ACTIONS), AuditEvent.outcome == "ok",
        AuditEvent.study_uid.in_(uids)).distinct()
    for (uid,) in s.execute(delivered):
        by_uid[uid].delivered = True
    return list(facts.values())


def header_departments(s: Session, studies: Iterable[StudyFacts]) -> None:
    """Fill each study's department from the stored header of its first instance.

    InstitutionalDepartmentName is not an index column; one header per study is read from
    the index (never from object storage), only when a report is grouped by department.
    Studies without it fall back to their InstitutionName.
    """
    pending = {f.pk: f for f in studies}
    keys = list(pending)
    for i in range(0, len(keys), _CHUNK):
        chunk = keys[i:i + _CHUNK]
        first = (select(func.min(Instance.id)).join(Series, Instance.series_fk == Series.id)
                 .where(Series.study_fk.in_(chunk)).group_by(Series.study_fk))
        stmt = (select(Series.study_fk, Instance.metadata_json)
                .join(Series, Instance.series_fk == Series.id)
                .where(Instance.id.in_(first)))
        for study_fk, text in s.execute(stmt):
            try:
                values = json.loads(text).get(_DEPARTMENT_TAG, {}).get("Value") or [""]
            except (ValueError, AttributeError):
                values = [""]
            pending[study_fk].department = str(values[0]).strip()
    for f in pending.values():
        if not f.department:
            f.department = f.institution

