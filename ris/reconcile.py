"""Reconciliation: studies matched to their orders, and the studies nobody ordered.

A study that arrives with a known Accession Number is linked to its order, advances it
(images mean the exam was performed) and gets the order's patient demographics in the
index; one that matches no order is listed for a technologist to link by hand (IHE SWF
"Patient Information Reconciliation", Rad TF-1 4.3). Runs as a post-store listener of
the archive: after the index commit, never failing the store.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from sqlalchemy import bindparam, exists, select

from ris._audit import audit_change
from ris.errors import InvalidTransition
from ris.models import Order, RisPatient
from ris.orders import Orders, OrderView, find_order, view
from ris.workflow import OrderStatus
from storage.archive import Archive, StoreResult
from storage.audit import AuditLog
from storage.corrections import Demographics
from storage.errors import NotFound
from storage.index.database import Database
from storage.index.direct import DirectStatement
from storage.index.models import Patient, Study
from storage.origin import Origin

log = logging.getLogger(__name__)

_BEFORE_EXAM = (OrderStatus.SCHEDULED, OrderStatus.ARRIVED)


@dataclass(frozen=True)
class StudyView:
    """An archived study with its workflow status (``""`` when no order is linked)."""

    study_uid: str
    accession_number: str
    patient_id: str
    patient_name: str
    study_date: str
    description: str
    modalities: list[str]
    num_instances: int
    order_status: str
    order_accession: str


_ORDER_OF_ACCESSION = DirectStatement(
    select(Order.linked_study_uid, Order.status, RisPatient.patient_id, RisPatient.name,
           RisPatient.birth_date, RisPatient.sex)
    .join(RisPatient, Order.patient_fk == RisPatient.id)
    .where(Order.accession_number == bindparam("accession"))
)
"""The order an arriving instance's Accession Number names, with its patient's
demographics (accession numbers are unique, so at most one row)."""


def _demographics(patient: RisPatient) -> Demographics:
    return Demographics(patient.patient_id, patient.name, patient.birth_date, patient.sex)


class Reconciler:
    """Link studies and orders, automatically and by hand."""

    def __init__(self, db: Database, audit: AuditLog, archive: Archive) -> None:
        self._db = db
        self._audit = audit
        self._archive = archive

    def on_store(self, result: StoreResult, origin: Origin) -> None:
        """Post-store listener: match the new instance's study by Accession Number."""
        if not result.accession_number:
            return
        # Most instances need no change: look first, so the ingest path takes no write
        # lock for them (one read per instance with an accession number, compiled once
        # and run on the DBAPI cursor: it runs for every stored instance).
        row = self._db.first(_ORDER_OF_ACCESSION, {"accession": result.accession_number})
        if row is None:
            return
        linked_study_uid, status, patient_id, name, birth_date, sex = row
        if linked_study_uid and OrderStatus(status) not in _BEFORE_EXAM:
            demographics = Demographics(patient_id, name, birth_date, sex)
            if result.demographics != demographics:
                self._archive.correct_study(result.study_uid, demographics, origin,
                                            instance_uid=result.sop_instance_uid)
            return
        with self._db.write() as s:
            order = s.scalar(select(Order).where(
                Order.accession_number == result.accession_number))
            if order is None:
                return
            patient = s.get(RisPatient, order.patient_fk)
            assert patient is not None
            first = not order.linked_study_uid
            if first:
                order.linked_study_uid = result.study_uid
                audit_change(s, origin, "order-link", patient_id=patient.patient_id,
                             study_uid=result.study_uid,
                             detail={"accession": order.accession_number, "by": "accession"})
            if OrderStatus(order.status) in _BEFORE_EXAM:
                Orders.advance_row(s, order, OrderStatus.COMPLETED, origin)
            demographics = _demographics(patient)
        if result.demographics != demographics:
            self._archive.correct_study(result.study_uid, demographics, origin,
                                        instance_uid=None if first else result.sop_instance_uid)

    def link(self, study_uid: str, accession: str, origin: Origin) -> OrderView:
        """Link an unmatched study to an order by hand; the study takes the order's
        patient and accession number.

        Raises
        ------
        NotFound
            No such study in the archive, or no such order.
        InvalidTransition
            The order is linked to another study already, or cancelled.
        """
        if self._archive.study_patient(study_uid.strip()) is None:
            raise NotFound("study is not in the archive")
        with self._db.write() as s:
            order = find_order(s, accession)
            if order.linked_study_uid and order.linked_study_uid != study_uid:
                raise InvalidTransition("the order is linked to another study")
            status = OrderStatus(order.status)
            if status in (OrderStatus.CANCELLED, OrderStatus.DISCONTINUED):
                raise InvalidTransition(f"a {status.value} order cannot take a study")
            order.linked_study_uid = study_uid.strip()
            if status in (*_BEFORE_EXAM, OrderStatus.IN_PROGRESS):
                Orders.advance_row(s, order, OrderStatus.COMPLETED, origin)
            patient = s.get(RisPatient, order.patient_fk)
            assert patient is not None
            audit_change(s, origin, "order-link", patient_id=patient.patient_id,
                         study_uid=order.linked_study_uid,
                         detail={"accession": order.accession_number, "by": "hand"})
            result = view(s, order)
        self._archive.correct_study(result.linked_study_uid, _demographics(patient), origin,
                                    accession_number=result.accession_number)
        return result

    def studies(self, origin: Origin, *, unmatched: bool = False, study_uid: str = "",
                limit: int = 100, offset: int = 0) -> list[StudyView]:
        """Archived studies with the status of their order, newest first; ``unmatched``
        keeps those no order is linked to."""
        linked = select(Order.status).where(
            Order.linked_study_uid == Study.study_uid).limit(1)
        stmt = (select(Study, Patient, linked.scalar_subquery(),
                       select(Order.accession_number).where(
                           Order.linked_study_uid == Study.study_uid).limit(1)
                       .scalar_subquery())
                .join(Patient, Study.patient_fk == Patient.id)
                .order_by(Study.id.desc()).limit(limit).offset(offset))
        if unmatched:
            stmt = stmt.where(~exists().where(Order.linked_study_uid == Study.study_uid))
        if study_uid:
            stmt = stmt.where(Study.study_uid == study_uid)
        with self._db.read() as s:
            rows = s.execute(stmt).all()
        found = [StudyView(st.study_uid, st.accession_number, p.patient_id, p.patient_name,
                           st.study_date, st.description,
                           [m for m in st.modalities.split("\\") if m], st.num_instances,
                           status or "", accession or "")
                 for st, p, status, accession in rows]
        self._audit.record(origin, "study-search", "ok", study_uid=study_uid,
                           detail={"unmatched": unmatched, "results": len(found)})
        return found
