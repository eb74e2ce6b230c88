"""Modality Worklist matching (PS3.4 K) and the radiologists' reading worklist.

MWL queries are matched with the C-FIND matching code of :mod:`storage.index.query`
(single value, wildcard, range, list of UIDs, universal), applied to the RIS columns, and
answered with the return keys of IHE SWF (Rad TF-2 4.5.4.2): patient, requested procedure
and one Scheduled Procedure Step Sequence item per step. Answers are UTF-8
(``ISO_IR 192``), so Vietnamese names reach the modality unchanged.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from pydicom.datadict import dictionary_VR, tag_for_keyword
from pydicom.dataset import Dataset
from sqlalchemy import case, select

from ris.errors import InvalidAttributeValue
from ris.models import Order, RisPatient, ScheduledStep
from ris.workflow import PRIORITIES, OrderStatus
from storage.audit import AuditLog, utcnow
from storage.errors import InvalidQuery
from storage.index.database import Database
from storage.index.query import Attr, Level, constraint

_A = Level.STUDY  # the level is not used by the matching code for these columns
MATCHING: dict[str, Attr] = {a.keyword: a for a in [
    Attr("PatientID", _A, "text", RisPatient.patient_id),
    Attr("PatientName", _A, "pn", RisPatient.name_norm),
    Attr("PatientBirthDate", _A, "date", RisPatient.birth_date),
    Attr("PatientSex", _A, "text", RisPatient.sex),
    Attr("AccessionNumber", _A, "text", Order.accession_number),
    Attr("RequestedProcedureID", _A, "text", Order.requested_procedure_id),
    Attr("StudyInstanceUID", _A, "uid", Order.study_uid),
    Attr("ScheduledStationAETitle", _A, "text", ScheduledStep.station_ae),
    Attr("ScheduledStationName", _A, "text", ScheduledStep.station_name),
    Attr("Modality", _A, "text", ScheduledStep.modality),
    Attr("ScheduledProcedureStepStartDate", _A, "date", ScheduledStep.start_date),
    Attr("ScheduledProcedureStepStartTime", _A, "time", ScheduledStep.start_time),
    Attr("ScheduledProcedureStepID", _A, "text", ScheduledStep.sps_id),
]}
"""MWL matching keys (PS3.4 K.6.1.2.2) kept as RIS columns."""

SPS = "ScheduledProcedureStepSequence"
WORKLIST_STATUSES = (OrderStatus.SCHEDULED.value, OrderStatus.ARRIVED.value)
"""Orders whose steps the modality still has to perform."""


@dataclass
class WorklistQuery:
    """An MWL identifier, translated: matching values and the requested return keys."""

    filters: dict[str, str] = field(default_factory=dict)
    keys: list[str] = field(default_factory=list)
    sps_keys: list[str] = field(default_factory=list)

    @classmethod
    def from_identifier(cls, identifier: Dataset | None) -> WorklistQuery:
        """Read (never change) a C-FIND MWL identifier (PS3.4 K.6.1.1).

        Raises
        ------
        InvalidQuery
            The identifier is missing or cannot be decoded (0xA900).
        """
        if identifier is None:
            raise InvalidQuery("identifier is missing or cannot be decoded")
        query = cls()
        try:
            for element in identifier:
                keyword = element.keyword
                if not keyword or keyword == "SpecificCharacterSet":
                    continue
                query.keys.append(keyword)
                if keyword == SPS:
                    for item in element.value[:1]:
                        for sub in item:
                            if sub.keyword:
                                query.sps_keys.append(sub.keyword)
                                query._match(sub.keyword, sub.value, sub.VR)
                elif element.VR != "SQ":
                    query._match(keyword, element.value, element.VR)
        except (ValueError, TypeError, KeyError, AttributeError) as exc:
            raise InvalidQuery("identifier cannot be decoded") from exc
        return query

    def _match(self, keyword: str, value: Any, vr: str) -> None:
        if keyword in MATCHING and vr != "SQ":
            if value is None:
                text = ""
            elif isinstance(value, list | tuple) or type(value).__name__ == "MultiValue":
                text = "\\".join(str(v) for v in value)
            else:
                text = str(value)
            self.filters[keyword] = text.strip()


def _set(ds: Dataset, keyword: str, value: Any) -> None:
    tag = tag_for_keyword(keyword)
    vr = dictionary_VR(tag)
    ds.add_new(tag, vr, value if value not in ("", None) else ([] if vr == "SQ" else None))


def _code_item(code: str, meaning: str) -> Dataset:
    item = Dataset()
    item.CodeValue = code[:16]
    item.CodingSchemeDesignator = "L"  # local codes (PS3.3 8.2)
    item.CodeMeaning = meaning[:64]
    return item


def answer(step: ScheduledStep, order: Order, patient: RisPatient,
           query: WorklistQuery) -> Dataset:
    """One MWL match with the keys IHE SWF returns (Rad TF-2 Table 4.5-3)."""
    sps = Dataset()
    sps_values: dict[str, Any] = {
        "ScheduledStationAETitle": step.station_ae,
        "ScheduledProcedureStepStartDate": step.start_date,
        "ScheduledProcedureStepStartTime": step.start_time,
        "Modality": step.modality,
        "ScheduledPerformingPhysicianName": step.performing_physician,
        "ScheduledProcedureStepDescription": step.description or order.procedure_description,
        "ScheduledStationName": step.station_name,
        "ScheduledProcedureStepID": step.sps_id,
        "ScheduledProcedureStepStatus": order.status.upper(),
        "ScheduledProtocolCodeSequence": [],
    }
    for keyword in query.sps_keys or list(sps_values):
        if keyword in sps_values:
            _set(sps, keyword, sps_values[keyword])
        elif tag_for_keyword(keyword) is not None:
            _set(sps, keyword, None)
    code = [_code_item(order.procedure_code, order.procedure_description)] \
        if order.procedure_code else []
    values: dict[str, Any] = {
        "AccessionNumber": order.accession_number,
        "ReferringPhysicianName": order.referring_physician_name,
        "PatientName": patient.name,
        "PatientID": patient.patient_id,
        "IssuerOfPatientID": patient.issuer,
        "PatientBirthDate": patient.birth_date,
        "PatientSex": patient.sex,
        "StudyInstanceUID": order.study_uid,
        "RequestedProcedureDescription": order.procedure_description,
        "RequestedProcedureCodeSequence": code,
        "RequestedProcedureID": order.requested_procedure_id,
        "RequestedProcedurePriority": order.priority,
        "RequestingService": order.department,
        "ReasonForTheRequestedProcedure": order.reason,
        "ReferencedStudySequence": [],
        "ReferencedPatientSequence": [],
        SPS: [sps],
    }
    ds = Dataset()
    ds.SpecificCharacterSet = "ISO_IR 192"
    for keyword in query.keys:
        if keyword in values:
            _set(ds, keyword, values[keyword])
        elif tag_for_keyword(keyword) is not None:
            _set(ds, keyword, None)  # a key we do not keep: returned empty (PS3.4 K.6.1.2.2)
    return ds


@dataclass(frozen=True)
class ReadingItem:
    """A study waiting for (or given) a report, with its turnaround times in minutes."""

    accession_number: str
    patient_id: str
    patient_name: str
    procedure_description: str
    modalities: list[str]
    priority: str
    status: str
    study_uid: str
    ordered_at: datetime
    exam_at: datetime | None
    preliminary_at: datetime | None
    final_at: datetime | None
    waiting_minutes: float | None
    turnaround: dict[str, float | None]


def _minutes(start: datetime | None, end: datetime | None) -> float | None:
    if start is None or end is None:
        return None
    return round((end - start).total_seconds() / 60, 1)


class Worklist:
    """Answer MWL queries and list studies to read."""

    def __init__(self, db: Database, audit: AuditLog, *, find_limit: int = 10_000) -> None:
        self._db = db
        self._audit = audit
        self.find_limit = find_limit

    def find(self, query: WorklistQuery, origin: Any) -> Iterator[Dataset]:
        """Yield the matching scheduled steps, at most ``find_limit``, in schedule order.

        Raises
        ------
        InvalidQuery
            A malformed range or UID in the identifier (0xA900).
        """
        stmt = (select(ScheduledStep, Order, RisPatient)
                .join(Order, ScheduledStep.order_fk == Order.id)
                .join(RisPatient, Order.patient_fk == RisPatient.id)
                .where(Order.status.in_(WORKLIST_STATUSES)))
        for keyword, raw in query.filters.items():
            clause = constraint(MATCHING[keyword], raw)
            if clause is not None:
                stmt = stmt.where(clause)
        stmt = stmt.order_by(ScheduledStep.start_date, ScheduledStep.start_time,
                             ScheduledStep.id).limit(self.find_limit)
        self._audit.record(origin, "worklist-query", "ok",
                           patient_id=query.filters.get("PatientID", ""),
                           detail={"keys": {k: v for k, v in query.filters.items() if v}})
        with self._db.read() as s:
            rows = s.execute(stmt).all()
        for step, order, patient in rows:
            yield answer(step, order, patient, query)

    def reading(self, origin: Any, *, statuses: list[OrderStatus] | None = None,
                limit: int = 200) -> list[ReadingItem]:
        """Studies waiting for a report: most urgent priority first, then the oldest exam.

        By default, orders completed or preliminary whose images are in the archive;
        ``statuses`` widens it (e.g. final, to review turnaround times).
        """
        wanted = statuses or [OrderStatus.COMPLETED, OrderStatus.PRELIMINARY]
        for status in wanted:
            if not isinstance(status, OrderStatus):
                raise InvalidAttributeValue("unknown order status")
        rank = case({p: n for n, p in enumerate(PRIORITIES)}, value=Order.priority, else_=9)
        stmt = (select(Order, RisPatient).join(RisPatient, Order.patient_fk == RisPatient.id)
                .where(Order.status.in_([s.value for s in wanted]), Order.linked_study_uid != "")
                .order_by(rank, Order.completed_at, Order.id).limit(limit))
        now = utcnow()
        items = []
        with self._db.read() as s:
            for order, patient in s.execute(stmt).all():
                modalities = sorted(set(s.scalars(select(ScheduledStep.modality).where(
                    ScheduledStep.order_fk == order.id))))
                exam = order.completed_at or order.started_at
                reported = order.final_at or order.preliminary_at
                items.append(ReadingItem(
                    order.accession_number, patient.patient_id, patient.name,
                    order.procedure_description, modalities, order.priority, order.status,
                    order.linked_study_uid, order.ordered_at, exam, order.preliminary_at,
                    order.final_at, None if reported else _minutes(exam, now), {
                        "order_to_exam": _minutes(order.ordered_at, exam),
                        "exam_to_preliminary": _minutes(exam, order.preliminary_at),
                        "exam_to_final": _minutes(exam, order.final_at),
                        "order_to_final": _minutes(order.ordered_at, order.final_at),
                    }))
        self._audit.record(origin, "reading-worklist", "ok", detail={"results": len(items)})
        return items
