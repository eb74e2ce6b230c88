"""Orders (requested procedures) with their scheduled steps, and the status machine.

An order arrives by REST or HL7 (ORM^O01 / OMI^O23). If the sender gives no Accession
Number we issue one; the Study Instance UID is issued at order time, so the modality
gets it from the worklist and the images come back under it (IHE SWF, Rad TF-2 4.5).
Every status change goes through :meth:`Orders.advance`, which the report service also
calls (preliminary, final, amended).
"""

from __future__ import annotations

import logging
import secrets
from dataclasses import dataclass, field, replace
from datetime import datetime

from pydicom.uid import generate_uid
from sqlalchemy import select
from sqlalchemy.orm import Session

from ris._audit import audit_change
from ris.errors import DuplicateInstance, InvalidAttributeValue, InvalidTransition, UnknownOrder
from ris.models import Order, RisPatient, ScheduledStep
from ris.patients import PatientInfo, upsert_row, validated
from ris.workflow import PRIORITIES, TIMESTAMP, OrderStatus, check_transition
from storage.archive import Archive
from storage.audit import AuditLog, utcnow
from storage.index.database import Database
from storage.origin import Origin

log = logging.getLogger(__name__)
REPORT_STATUSES = {OrderStatus.PRELIMINARY, OrderStatus.FINAL, OrderStatus.AMENDED}
_REPORTS = Origin(channel="ris", username="report sign-off")


@dataclass(frozen=True)
class StepRequest:
    """One scheduled procedure step to create (PS3.3 C.4.10, Scheduled Procedure Step)."""

    modality: str
    station_ae: str = ""
    station_name: str = ""
    start_date: str = ""
    start_time: str = ""
    description: str = ""
    performing_physician: str = ""


@dataclass(frozen=True)
class OrderRequest:
    """What a new order (or an order change, HL7 ORC-1 XO) holds."""

    patient: PatientInfo
    steps: list[StepRequest] = field(default_factory=list)
    accession_number: str = ""
    placer_order_number: str = ""
    procedure_code: str = ""
    procedure_description: str = ""
    priority: str = "ROUTINE"
    referring_physician_name: str = ""
    department: str = ""
    reason: str = ""


@dataclass(frozen=True)
class StepView:
    sps_id: str
    modality: str
    station_ae: str
    station_name: str
    start_date: str
    start_time: str
    description: str
    performing_physician: str


@dataclass(frozen=True)
class OrderView:
    """An order as services and adapters see it."""

    accession_number: str
    placer_order_number: str
    patient: PatientInfo
    requested_procedure_id: str
    procedure_code: str
    procedure_description: str
    priority: str
    referring_physician_name: str
    department: str
    reason: str
    study_uid: str
    linked_study_uid: str
    status: OrderStatus
    times: dict[str, datetime | None]
    steps: list[StepView]


def view(session: Session, order: Order) -> OrderView:
    patient = session.get(RisPatient, order.patient_fk)
    assert patient is not None
    steps = session.scalars(select(ScheduledStep).where(ScheduledStep.order_fk == order.id)
                            .order_by(ScheduledStep.id))
    times = {"ordered_at": order.ordered_at}
    times.update({col: getattr(order, col) for col in TIMESTAMP.values()})
    return OrderView(
        order.accession_number, order.placer_order_number,
        PatientInfo(patient.patient_id, patient.name, patient.birth_date, patient.sex,
                    patient.issuer, patient.address, patient.phone, patient.merged_into),
        order.requested_procedure_id, order.procedure_code, order.procedure_description,
        order.priority, order.referring_physician_name, order.department, order.reason,
        order.study_uid, order.linked_study_uid, OrderStatus(order.status), times,
        [StepView(st.sps_id, st.modality, st.station_ae, st.station_name, st.start_date,
                  st.start_time, st.description, st.performing_physician) for st in steps])


def find_order(session: Session, accession: str) -> Order:
    order = session.scalar(select(Order).where(Order.accession_number == accession.strip()))
    if order is None:
        raise UnknownOrder("no order with this accession number")
    return order


def _check_step(step: StepRequest) -> StepRequest:
    modality = step.modality.strip().upper()
    if not modality or len(modality) > 16:
        raise InvalidAttributeValue("each scheduled step needs a modality (e.g. CT)")
    for value, what in ((step.start_date, "start date"), (step.start_time[:6], "start time")):
        if value and not value.isdigit():
            raise InvalidAttributeValue(f"scheduled {what} must be digits (DA/TM)")
    if step.start_date and len(step.start_date) != 8:
        raise InvalidAttributeValue("scheduled start date must be YYYYMMDD")
    return replace(step, modality=modality, station_ae=step.station_ae.strip()[:16])


def _check(request: OrderRequest) -> OrderRequest:
    priority = (request.priority or "ROUTINE").strip().upper()
    if priority not in PRIORITIES:
        raise InvalidAttributeValue(f"priority must be one of {', '.join(PRIORITIES)}")
    accession = request.accession_number.strip()
    if len(accession) > 16 or "\\" in accession:
        raise InvalidAttributeValue("accession number is at most 16 characters (SH)")
    if not request.steps:
        raise InvalidAttributeValue("an order needs at least one scheduled step")
    return replace(request, patient=validated(request.patient), priority=priority,
                   accession_number=accession, steps=[_check_step(s) for s in request.steps])


def _new_accession(session: Session) -> str:
    """An accession number of our own: date and 8 random digits (SH, 14 characters)."""
    while True:
        candidate = f"{utcnow():%y%m%d}{secrets.randbelow(10**8):08d}"
        if session.scalar(select(Order.id).where(Order.accession_number == candidate)) is None:
            return candidate


def _add_steps(session: Session, order: Order, steps: list[StepRequest]) -> None:
    for n, step in enumerate(steps, start=1):
        session.add(ScheduledStep(
            order_fk=order.id, sps_id=f"{order.requested_procedure_id[:13]}.{n}",
            modality=step.modality, station_ae=step.station_ae, station_name=step.station_name,
            start_date=step.start_date, start_time=step.start_time,
            description=step.description[:64],
            performing_physician=step.performing_physician))


class Orders:
    """Create, change, read orders and move them through the status machine."""

    def __init__(self, db: Database, audit: AuditLog, archive: Archive) -> None:
        self._db = db
        self._audit = audit
        self._archive = archive

    def create(self, request: OrderRequest, origin: Origin) -> OrderView:
        """Register a new order (and its patient, registered or updated from the order).

        Raises
        ------
        Conflict
            The accession number is already used by another order.
        InvalidAttributeValue, MissingAttribute
        """
        request = _check(request)
        now = utcnow()
        with self._db.write() as s:
            patient, changed = upsert_row(s, request.patient, origin)
            accession = request.accession_number or _new_accession(s)
            if s.scalar(select(Order.id).where(Order.accession_number == accession)):
                raise DuplicateInstance("an order with this accession number exists")
            order = Order(
                accession_number=accession, placer_order_number=request.placer_order_number,
                patient_fk=patient.id, requested_procedure_id=accession,
                procedure_code=request.procedure_code[:64],
                procedure_description=request.procedure_description[:64],
                priority=request.priority,
                referring_physician_name=request.referring_physician_name,
                department=request.department[:64], reason=request.reason[:255],
                study_uid=generate_uid(), linked_study_uid="",
                status=OrderStatus.SCHEDULED.value, ordered_at=now, updated_at=now)
            s.add(order)
            s.flush()
            _add_steps(s, order, request.steps)
            s.flush()
            audit_change(s, origin, "order-create", patient_id=patient.patient_id,
                         study_uid=order.study_uid, detail={"accession": accession})
            result = view(s, order)
        if changed:
            self._archive.correct_patient(result.patient.demographics(), origin)
        return result

    def change(self, accession: str, request: OrderRequest, origin: Origin) -> OrderView:
        """Replace procedure, priority, physician and steps of an order not yet performed
        (HL7 ORC-1 XO).

        Raises
        ------
        InvalidTransition
            The exam has started or the order is closed.
        """
        request = _check(replace(request, accession_number=accession))
        with self._db.write() as s:
            order = find_order(s, accession)
            if OrderStatus(order.status) not in (OrderStatus.SCHEDULED, OrderStatus.ARRIVED):
                raise InvalidTransition(f"an order that is {order.status} cannot be changed")
            upsert_row(s, request.patient, origin)
            order.procedure_code = request.procedure_code[:64]
            order.procedure_description = request.procedure_description[:64]
            order.priority = request.priority
            order.referring_physician_name = request.referring_physician_name
            order.department = request.department[:64]
            order.reason = request.reason[:255]
            order.updated_at = utcnow()
            for step in s.scalars(select(ScheduledStep).where(ScheduledStep.order_fk == order.id)):
                s.delete(step)
            s.flush()
            _add_steps(s, order, request.steps)
            s.flush()
            audit_change(s, origin, "order-change", study_uid=order.study_uid,
                         detail={"accession": order.accession_number})
            return view(s, order)

    def get(self, accession: str, origin: Origin) -> OrderView:
        with self._db.read() as s:
            result = view(s, find_order(s, accession))
        self._audit.record(origin, "order-read", "ok", patient_id=result.patient.patient_id,
                           study_uid=result.study_uid)
        return result

    def search(self, origin: Origin, *, status: OrderStatus | None = None,
               patient_id: str = "", limit: int = 100, offset: int = 0) -> list[OrderView]:
        stmt = select(Order).order_by(Order.id).limit(limit).offset(offset)
        if status is not None:
            stmt = stmt.where(Order.status == status.value)
        if patient_id:
            stmt = stmt.join(RisPatient, Order.patient_fk == RisPatient.id).where(
                RisPatient.patient_id == patient_id)
        with self._db.read() as s:
            found = [view(s, o) for o in s.scalars(stmt)]
        self._audit.record(origin, "order-search", "ok", patient_id=patient_id,
                           detail={"status": status.value if status else "",
                                   "results": len(found)})
        return found

    def advance(self, accession: str, status: OrderStatus, origin: Origin, *,
                at: datetime | None = None) -> OrderView:
        """Move the order to ``status`` and stamp the time (for turnaround times).

        The report service calls this with ``PRELIMINARY``, ``FINAL`` and ``AMENDED``.

        Raises
        ------
        UnknownOrder
        InvalidTransition
            The move is not in :data:`ris.workflow.TRANSITIONS`; nothing changes.
        """
        with self._db.write() as s:
            order = find_order(s, accession)
            self.advance_row(s, order, status, origin, at=at)
            return view(s, order)

    def follow_report(self, study_uid: str, accession: str, status: str) -> None:
        """Listener of the report service: a report's sign-off moves its order to
        preliminary, final or amended (IHE SWF). A report of a study with no order changes
        nothing; a move the order cannot make (e.g. its exam not completed) is logged."""
        if status not in REPORT_STATUSES or not accession:
            return
        try:
            self.advance(accession, OrderStatus(status), _REPORTS)
        except UnknownOrder:
            return
        except InvalidTransition as exc:
            log.warning("report of study %s did not move its order: %s", study_uid, exc)

    @staticmethod
    def advance_row(session: Session, order: Order, status: OrderStatus, origin: Origin, *,
                    at: datetime | None = None) -> None:
        """:meth:`advance` inside the caller's transaction (MPPS, reconciliation)."""
        current = OrderStatus(order.status)
        check_transition(current, status)
        now = at or utcnow()
        order.status = status.value
        order.updated_at = now
        if status is OrderStatus.COMPLETED and order.started_at is None:
            order.started_at = now  # images came without an MPPS: the exam is their arrival
        column = TIMESTAMP[status]
        if getattr(order, column) is None or status in (OrderStatus.AMENDED,
                                                        OrderStatus.PRELIMINARY):
            setattr(order, column, now)
        audit_change(session, origin, "order-status", study_uid=order.study_uid,
                     detail={"accession": order.accession_number, "from": current.value,
                             "to": status.value})
