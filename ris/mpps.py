"""Modality Performed Procedure Step (PS3.4 F.7): the modality reports the exam.

N-CREATE opens a step IN PROGRESS, N-SET updates it and finally makes it COMPLETED or
DISCONTINUED (PS3.3 C.4.14). The step is linked to its order through the Scheduled Step
Attributes Sequence (Accession Number, or Scheduled Procedure Step ID), and moves the
order: in progress → completed / discontinued. A step that is COMPLETED or DISCONTINUED
cannot be changed again (PS3.4 F.7.2.2.2: processing failure 0x0110).
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from pydicom.dataset import Dataset
from sqlalchemy import select
from sqlalchemy.orm import Session

from ris._audit import audit_change
from ris.errors import (
    DuplicateInstance,
    InvalidAttributeValue,
    InvalidTransition,
    MissingAttribute,
    NoSuchInstance,
)
from ris.models import Order, PerformedStep, ScheduledStep
from ris.orders import Orders
from ris.workflow import TRANSITIONS, OrderStatus
from storage.audit import utcnow
from storage.dicomio import is_valid_uid
from storage.dicomjson import dataset_to_json
from storage.index.database import Database
from storage.origin import Origin

IN_PROGRESS, COMPLETED, DISCONTINUED = "IN PROGRESS", "COMPLETED", "DISCONTINUED"
STATUSES = {IN_PROGRESS: OrderStatus.IN_PROGRESS, COMPLETED: OrderStatus.COMPLETED,
            DISCONTINUED: OrderStatus.DISCONTINUED}
"""Performed Procedure Step Status (0040,0252) values, PS3.3 C.4.14, and the order
status each one moves the order to."""


@dataclass(frozen=True)
class PerformedStepView:
    sop_instance_uid: str
    status: str
    accession_number: str


def _status(ds: Dataset, *, required: bool) -> str | None:
    if "PerformedProcedureStepStatus" not in ds:
        if required:
            raise MissingAttribute("Performed Procedure Step Status is missing")
        return None
    value = str(ds.PerformedProcedureStepStatus or "").strip().upper()
    if value not in STATUSES:
        raise InvalidAttributeValue("Performed Procedure Step Status is not valid")
    return value


def _linked_order(session: Session, ds: Dataset) -> Order | None:
    """The order named by the first Scheduled Step Attributes item (PS3.3 C.4.13)."""
    for item in ds.get("ScheduledStepAttributesSequence", None) or []:
        accession = str(item.get("AccessionNumber", "") or "").strip()
        if accession:
            order = session.scalar(select(Order).where(Order.accession_number == accession))
            if order is not None:
                return order
        sps_id = str(item.get("ScheduledProcedureStepID", "") or "").strip()
        if sps_id:
            order = session.scalar(select(Order).join(
                ScheduledStep, ScheduledStep.order_fk == Order.id).where(
                ScheduledStep.sps_id == sps_id))
            if order is not None:
                return order
    return None


def _move_order(session: Session, order: Order | None, status: str, origin: Origin) -> None:
    """Advance the linked order if the MPPS status takes it further; an order already
    past that point (e.g. completed because the images came first) stays as it is."""
    if order is None:
        return
    target = STATUSES[status]
    current = OrderStatus(order.status)
    if current == target:
        return
    if target in TRANSITIONS[current]:
        Orders.advance_row(session, order, target, origin)
    elif current in (OrderStatus.SCHEDULED, OrderStatus.ARRIVED) and \
            target is OrderStatus.DISCONTINUED:
        Orders.advance_row(session, order, OrderStatus.IN_PROGRESS, origin)
        Orders.advance_row(session, order, target, origin)


class PerformedSteps:
    """The MPPS SCP's business rules."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def create(self, sop_instance_uid: str, attributes: Dataset,
               origin: Origin) -> PerformedStepView:
        """N-CREATE (PS3.4 F.7.2.1): a new step, which must be IN PROGRESS.

        Raises
        ------
        MissingAttribute
            No status or no Scheduled Step Attributes Sequence (0x0120).
        InvalidAttributeValue
            A status other than IN PROGRESS, or a malformed SOP Instance UID (0x0106).
        DuplicateInstance
            The SOP Instance exists already (0x0111).
        """
        if not is_valid_uid(sop_instance_uid):
            raise InvalidAttributeValue("Affected SOP Instance UID is not a valid UID")
        if _status(attributes, required=True) != IN_PROGRESS:
            raise InvalidAttributeValue("an MPPS is created IN PROGRESS (PS3.4 F.7.2.1.1)")
        if "ScheduledStepAttributesSequence" not in attributes:
            raise MissingAttribute("Scheduled Step Attributes Sequence is missing")
        now = utcnow()
        with self._db.write() as s:
            if s.scalar(select(PerformedStep.id).where(
                    PerformedStep.sop_instance_uid == sop_instance_uid)) is not None:
                raise DuplicateInstance("this MPPS instance exists already")
            order = _linked_order(s, attributes)
            s.add(PerformedStep(
                sop_instance_uid=sop_instance_uid, order_fk=order.id if order else None,
                status=IN_PROGRESS, modality=str(attributes.get("Modality", "") or "")[:16],
                station_ae=str(attributes.get("PerformedStationAETitle", "") or "")[:16],
                attributes_json=json.dumps(dataset_to_json(attributes)),
                created_at=now, updated_at=now))
            _move_order(s, order, IN_PROGRESS, origin)
            audit_change(s, origin, "mpps-create",
                         study_uid=order.study_uid if order else "",
                         detail={"mpps": sop_instance_uid, "status": IN_PROGRESS,
                                 "accession": order.accession_number if order else ""})
            return PerformedStepView(sop_instance_uid, IN_PROGRESS,
                                     order.accession_number if order else "")

    def update(self, sop_instance_uid: str, modifications: Dataset,
               origin: Origin) -> PerformedStepView:
        """N-SET (PS3.4 F.7.2.2): new attribute values, possibly the final status.

        Raises
        ------
        NoSuchInstance
            No step with this SOP Instance UID (0x0112).
        InvalidTransition
            The step is COMPLETED or DISCONTINUED already (0x0110).
        InvalidAttributeValue
            An unknown status value (0x0106).
        """
        status = _status(modifications, required=False)
        with self._db.write() as s:
            step = s.scalar(select(PerformedStep).where(
                PerformedStep.sop_instance_uid == sop_instance_uid))
            if step is None:
                raise NoSuchInstance("no MPPS instance with this UID")
            if step.status != IN_PROGRESS:
                raise InvalidTransition(f"the MPPS is {step.status} and cannot be changed")
            stored = json.loads(step.attributes_json or "{}")
            stored.update(dataset_to_json(modifications))
            step.attributes_json = json.dumps(stored)
            step.updated_at = utcnow()
            order = s.get(Order, step.order_fk) if step.order_fk is not None else None
            if status is not None and status != step.status:
                step.status = status
                _move_order(s, order, status, origin)
            audit_change(s, origin, "mpps-set", study_uid=order.study_uid if order else "",
                         detail={"mpps": sop_instance_uid, "status": step.status})
            return PerformedStepView(sop_instance_uid, step.status,
                                     order.accession_number if order else "")
