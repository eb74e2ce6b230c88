"""Modality Worklist C-FIND with DCMTK ``findscu -W`` (a real modality-side peer)."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydicom import dcmread
from pydicom.dataset import Dataset
from pynetdicom import AE
from pynetdicom import sop_class as sc

from ris.orders import OrderRequest, StepRequest
from ris.patients import PatientInfo
from ris.workflow import OrderStatus
from storage.origin import Origin
from tests.conftest import Listener
from tests.ris.conftest import VIETNAMESE
from tests.support.dcmtk import run

SPS = "ScheduledProcedureStepSequence"
RETURN_KEYS = ["PatientName", "PatientID", "PatientBirthDate", "PatientSex",
               "AccessionNumber", "StudyInstanceUID", "RequestedProcedureID",
               "RequestedProcedureDescription", "ReferringPhysicianName",
               f"{SPS}[0].ScheduledStationAETitle", f"{SPS}[0].Modality",
               f"{SPS}[0].ScheduledProcedureStepStartDate",
               f"{SPS}[0].ScheduledProcedureStepStartTime",
               f"{SPS}[0].ScheduledProcedureStepID",
               f"{SPS}[0].ScheduledProcedureStepDescription"]


def _schedule(listener: Listener) -> dict[str, str]:
    orders = listener.services.orders
    origin = Origin("http")
    made = {}
    for acc, pid, name, modality, station, date in [
        ("W1", "P1", VIETNAMESE, "CT", "CT1", "20250301"),
        ("W2", "P2", "TRẦN^THỊ^BÍCH", "CT", "CT1", "20250302"),
        ("W3", "P3", "LÊ^MINH", "MR", "MR1", "20250301"),
        ("W4", "P4", "NGUYỄN^THỊ^LAN", "CT", "CT2", "20250310"),
    ]:
        view = orders.create(OrderRequest(
            patient=PatientInfo(pid, name, "19800101", "F"), accession_number=acc,
            procedure_description="Chụp " + modality, referring_physician_name="ĐỖ^HÙNG",
            steps=[StepRequest(modality, station, start_date=date, start_time="083000",
                               description="Bước " + modality)]), origin)
        made[acc] = view.study_uid
    orders.advance("W4", OrderStatus.CANCELLED, origin)
    return made


def findscu(listener: Listener, out: Path, *keys: str) -> list[Dataset]:
    out.mkdir(parents=True, exist_ok=True)
    args = ["-W", "-aec", listener.ae_title, "-X", "-od", str(out)]
    given = {k.split("=", 1)[0] for k in keys}
    for key in [*keys, *(k for k in RETURN_KEYS if k not in given)]:
        args += ["-k", key]
    result = run("findscu", *args, listener.host, str(listener.port))
    assert result.returncode == 0, result.stderr
    return [dcmread(p) for p in sorted(out.glob("rsp*.dcm"))]


def test_match_by_station_ae_returns_swf_keys(listener: Listener, tmp_path: Path) -> None:
    made = _schedule(listener)
    found = findscu(listener, tmp_path / "a", f"{SPS}[0].ScheduledStationAETitle=CT1",
                    "SpecificCharacterSet=ISO_IR 192")
    assert sorted(ds.AccessionNumber for ds in found) == ["W1", "W2"]
    first = next(ds for ds in found if ds.AccessionNumber == "W1")
    assert first.SpecificCharacterSet == "ISO_IR 192"
    assert str(first.PatientName) == VIETNAMESE
    assert first.PatientID == "P1"
    assert first.StudyInstanceUID == made["W1"]
    assert first.RequestedProcedureID == "W1"
    assert first.RequestedProcedureDescription == "Chụp CT"
    assert str(first.ReferringPhysicianName) == "ĐỖ^HÙNG"
    step = first[SPS][0]
    assert step.ScheduledStationAETitle == "CT1"
    assert step.Modality == "CT"
    assert step.ScheduledProcedureStepStartDate == "20250301"
    assert step.ScheduledProcedureStepID
    assert step.ScheduledProcedureStepDescription == "Bước CT"


@pytest.mark.parametrize("keys, expected", [
    ([f"{SPS}[0].ScheduledProcedureStepStartDate=20250301-20250302"], ["W1", "W2", "W3"]),
    ([f"{SPS}[0].ScheduledProcedureStepStartDate=20250302-"], ["W2"]),
    ([f"{SPS}[0].Modality=MR"], ["W3"]),
    (["PatientID=P2"], ["W2"]),
    (["AccessionNumber=W3"], ["W3"]),
    (["PatientName=nguy*"], ["W1"]),  # W4 is cancelled: no longer on the worklist
    (["PatientName=TR?N*"], ["W2"]),
    ([f"{SPS}[0].Modality=CT", f"{SPS}[0].ScheduledProcedureStepStartDate=20250301"], ["W1"]),
    (["PatientID=NOBODY"], []),
])
def test_matching(listener: Listener, tmp_path: Path, keys: list[str],
                  expected: list[str]) -> None:
    _schedule(listener)
    found = findscu(listener, tmp_path / "q", *keys, "SpecificCharacterSet=ISO_IR 192")
    assert sorted(ds.AccessionNumber for ds in found) == expected


def test_bad_date_range_is_refused_with_a900(sqlite_listener: Listener) -> None:
    ae = AE(ae_title="MODALITY")
    ae.add_requested_context(sc.ModalityWorklistInformationFind)
    assoc = ae.associate(sqlite_listener.host, sqlite_listener.port, ae_title="PACS")
    assert assoc.is_established
    identifier = Dataset()
    step = Dataset()
    step.ScheduledProcedureStepStartDate = "2025-03-01"
    identifier.ScheduledProcedureStepSequence = [step]
    identifier.AccessionNumber = ""
    statuses = [status.Status for status, _ in assoc.send_c_find(
        identifier, sc.ModalityWorklistInformationFind)]
    assoc.release()
    assert statuses == [0xA900]
