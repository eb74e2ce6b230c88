"""MPPS N-CREATE / N-SET with a pynetdicom SCU: order linking and failure statuses."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from pydicom.dataset import Dataset
from pydicom.uid import generate_uid
from pynetdicom import AE
from pynetdicom import sop_class as sc
from pynetdicom.association import Association

from ris.orders import OrderRequest, StepRequest
from ris.patients import PatientInfo
from ris.workflow import OrderStatus
from storage.origin import Origin
from tests.conftest import Listener

MPPS = sc.ModalityPerformedProcedureStep


@pytest.fixture
def assoc(listener: Listener) -> Iterator[Association]:
    ae = AE(ae_title="CT1")
    ae.add_requested_context(MPPS)
    association = ae.associate(listener.host, listener.port, ae_title=listener.ae_title)
    assert association.is_established
    yield association
    association.release()


def _order(listener: Listener, accession: str = "MP1") -> str:
    view = listener.services.orders.create(OrderRequest(
        patient=PatientInfo("PM1", "VÕ^THỊ^SÁU", "19600101", "F"), accession_number=accession,
        steps=[StepRequest("CT", "CT1", start_date="20250301")]), Origin("http"))
    return view.steps[0].sps_id


def in_progress(accession: str = "MP1", sps_id: str = "", status: str = "IN PROGRESS",
                with_sequence: bool = True) -> Dataset:
    ds = Dataset()
    if with_sequence:
        item = Dataset()
        item.AccessionNumber = accession
        item.ScheduledProcedureStepID = sps_id
        item.StudyInstanceUID = generate_uid()
        ds.ScheduledStepAttributesSequence = [item]
    ds.PatientName = "VÕ^THỊ^SÁU"
    ds.SpecificCharacterSet = "ISO_IR 192"
    ds.PatientID = "PM1"
    ds.Modality = "CT"
    ds.PerformedStationAETitle = "CT1"
    ds.PerformedProcedureStepID = "PPS1"
    ds.PerformedProcedureStepStartDate = "20250301"
    ds.PerformedProcedureStepStartTime = "090000"
    if status is not None:
        ds.PerformedProcedureStepStatus = status
    return ds


def final(status: str) -> Dataset:
    ds = Dataset()
    ds.PerformedProcedureStepStatus = status
    ds.PerformedProcedureStepEndDate = "20250301"
    ds.PerformedProcedureStepEndTime = "091500"
    return ds


def status_of(listener: Listener, accession: str = "MP1") -> OrderStatus:
    return listener.services.orders.get(accession, Origin("http")).status


def test_in_progress_then_completed_moves_the_order(listener: Listener,
                                                    assoc: Association) -> None:
    _order(listener)
    uid = generate_uid()
    status, attrs = assoc.send_n_create(in_progress(), MPPS, uid)
    assert status.Status == 0x0000
    assert attrs is not None and attrs.PerformedProcedureStepStatus == "IN PROGRESS"
    assert status_of(listener) is OrderStatus.IN_PROGRESS

    status, _ = assoc.send_n_set(final("COMPLETED"), MPPS, uid)
    assert status.Status == 0x0000
    assert status_of(listener) is OrderStatus.COMPLETED
    order = listener.services.orders.get("MP1", Origin("http"))
    assert order.times["started_at"] is not None and order.times["completed_at"] is not None

    # a COMPLETED step is final: another N-SET is a processing failure, nothing changes
    status, _ = assoc.send_n_set(final("DISCONTINUED"), MPPS, uid)
    assert status.Status == 0x0110
    assert status_of(listener) is OrderStatus.COMPLETED


def test_linked_by_sps_id_and_discontinued(listener: Listener, assoc: Association) -> None:
    sps_id = _order(listener, "MP2")
    uid = generate_uid()
    status, _ = assoc.send_n_create(in_progress(accession="", sps_id=sps_id), MPPS, uid)
    assert status.Status == 0x0000
    assert status_of(listener, "MP2") is OrderStatus.IN_PROGRESS
    intermediate = Dataset()
    intermediate.SpecificCharacterSet = "ISO_IR 192"
    intermediate.PerformedProcedureStepDescription = "CT NGỰC"
    assert assoc.send_n_set(intermediate, MPPS, uid)[0].Status == 0x0000
    assert status_of(listener, "MP2") is OrderStatus.IN_PROGRESS
    assert assoc.send_n_set(final("DISCONTINUED"), MPPS, uid)[0].Status == 0x0000
    assert status_of(listener, "MP2") is OrderStatus.DISCONTINUED


def test_failure_statuses(listener: Listener, assoc: Association) -> None:
    _order(listener)
    uid = generate_uid()
    assert assoc.send_n_create(in_progress(), MPPS, uid)[0].Status == 0x0000
    # duplicate N-CREATE
    assert assoc.send_n_create(in_progress(), MPPS, uid)[0].Status == 0x0111
    # N-SET of an instance never created
    assert assoc.send_n_set(final("COMPLETED"), MPPS, generate_uid())[0].Status == 0x0112
    # missing status, missing Scheduled Step Attributes Sequence
    assert assoc.send_n_create(in_progress(status=None), MPPS,
                               generate_uid())[0].Status == 0x0120
    assert assoc.send_n_create(in_progress(with_sequence=False), MPPS,
                               generate_uid())[0].Status == 0x0120
    # invalid values: created COMPLETED, or an unknown status in N-SET
    assert assoc.send_n_create(in_progress(status="COMPLETED"), MPPS,
                               generate_uid())[0].Status == 0x0106
    assert assoc.send_n_set(final("FINISHED"), MPPS, uid)[0].Status == 0x0106
    assert status_of(listener) is OrderStatus.IN_PROGRESS


def test_unscheduled_step_is_accepted_without_order(listener: Listener,
                                                    assoc: Association) -> None:
    uid = generate_uid()
    status, _ = assoc.send_n_create(in_progress(accession="NOT-ORDERED"), MPPS, uid)
    assert status.Status == 0x0000
    assert assoc.send_n_set(final("COMPLETED"), MPPS, uid)[0].Status == 0x0000
    listener.services.audit.flush()
    events = listener.services.audit.events(action="mpps-set")
    assert events and events[0].channel == "dimse" and events[0].calling_ae == "CT1"
