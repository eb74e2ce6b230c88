"""Reconciliation: images matched to orders by Accession Number over C-STORE, unmatched
studies linked by hand, and corrected demographics served in C-FIND, QIDO-RS, WADO-RS and
C-GET while the stored bytes stay as received; then the reading worklist."""

from __future__ import annotations

from pathlib import Path

from fastapi.testclient import TestClient
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian

from ris.orders import OrderRequest, StepRequest
from ris.patients import PatientInfo
from ris.workflow import OrderStatus
from storage.origin import Origin
from tests.conftest import Listener
from tests.dicom import scu
from tests.http.dicomweb_support import split_multipart
from tests.ris.conftest import VIETNAMESE
from tests.support.data import StudySpec, make_study
from viewer_api import create_app

HTTP = Origin("http")


def _order(listener: Listener, accession: str, patient_id: str, name: str,
           priority: str = "ROUTINE") -> str:
    return listener.services.orders.create(OrderRequest(
        patient=PatientInfo(patient_id, name, "19800101", "M"), accession_number=accession,
        priority=priority, steps=[StepRequest("CT", "CT1", start_date="20250301")]),
        HTTP).study_uid


def _find_study(listener: Listener, study_uid: str) -> dict[str, str]:
    result = scu.find(listener, scu.query("STUDY", StudyInstanceUID=study_uid, PatientName="",
                                          PatientID="", AccessionNumber="",
                                          PatientBirthDate=""))
    assert result.final == 0x0000 and len(result.matches) == 1, result.statuses
    m = result.matches[0]
    return {"name": str(m.PatientName), "id": m.PatientID, "acc": m.AccessionNumber,
            "birth": m.PatientBirthDate}


def _wado_instance(client: TestClient, study: str, series: str, sop: str) -> object:
    response = client.get(f"/dicomweb/studies/{study}/series/{series}/instances/{sop}")
    assert response.status_code == 200, response.text
    (part,) = split_multipart(response.content, response.headers["content-type"])
    return scu.read_bytes(part)


def test_images_with_a_known_accession_are_matched_and_corrected(
        listener: Listener, tmp_path: Path) -> None:
    _order(listener, "R1", "P7", VIETNAMESE, priority="STAT")
    spec = StudySpec(patient_id="P7", patient_name="NGUYEN^VAN AN", birth_date="19790101",
                     accession="R1", instances=2)
    datasets = make_study(spec)
    assert scu.store_datasets(listener, datasets) == [0, 0]

    order = listener.services.orders.get("R1", HTTP)
    assert order.status is OrderStatus.COMPLETED
    assert order.linked_study_uid == spec.study_uid
    # C-FIND answers with the order's demographics
    assert _find_study(listener, spec.study_uid) == {
        "name": VIETNAMESE, "id": "P7", "acc": "R1", "birth": "19800101"}
    sop = str(datasets[0].SOPInstanceUID)
    series = str(datasets[0].SeriesInstanceUID)
    with TestClient(create_app(listener.services)) as client:
        # QIDO-RS and the stored JSON headers
        qido = client.get("/dicomweb/studies", params={"StudyInstanceUID": spec.study_uid,
                                                       "includefield": "00100030"}).json()
        assert qido[0]["00100010"]["Value"][0]["Alphabetic"] == VIETNAMESE
        meta = client.get(f"/dicomweb/studies/{spec.study_uid}/metadata").json()
        assert {m["00100010"]["Value"][0]["Alphabetic"] for m in meta} == {VIETNAMESE}
        assert {m["00100030"]["Value"][0] for m in meta} == {"19800101"}
        # WADO-RS: the object comes out corrected, pixel data untouched
        retrieved = _wado_instance(client, spec.study_uid, series, sop)
        assert str(retrieved.PatientName) == VIETNAMESE
        assert retrieved.PatientBirthDate == "19800101"
        assert retrieved.PixelData == datasets[0].PixelData
        study_view = client.get(f"/api/studies/{spec.study_uid}").json()
        assert study_view["order_status"] == "completed"
        assert study_view["order_accession"] == "R1"
    # the archived bytes are as received
    (stored,) = scu.stored_objects(listener.services, sop)
    assert str(scu.read_bytes(stored).PatientName) == "NGUYEN^VAN AN"
    # C-GET sends the corrected object too
    got = scu.get(listener, scu.query("IMAGE", StudyInstanceUID=spec.study_uid,
                                      SeriesInstanceUID=series, SOPInstanceUID=sop),
                  [(CTImageStorage, [ExplicitVRLittleEndian])])
    assert got.final == 0x0000
    assert str(got.received[0].dataset.PatientName) == VIETNAMESE

    # an ADT^A08-style update of the patient reaches the archive as well
    listener.services.patients.register(PatientInfo("P7", "NGUYỄN^VĂN ANH", "19800101", "M"),
                                        HTTP)
    assert _find_study(listener, spec.study_uid)["name"] == "NGUYỄN^VĂN ANH"
    # a late image of the same study is corrected on arrival
    late = make_study(StudySpec(patient_id="P7", patient_name="WRONG^NAME",
                                accession="R1", study_uid=spec.study_uid, instances=1))
    assert scu.store_datasets(listener, late) == [0]
    with TestClient(create_app(listener.services)) as client:
        meta = client.get(f"/dicomweb/studies/{spec.study_uid}/metadata").json()
    assert {m["00100010"]["Value"][0]["Alphabetic"] for m in meta} == {"NGUYỄN^VĂN ANH"}


def test_unmatched_study_is_listed_and_linked_by_hand(listener: Listener) -> None:
    _order(listener, "R2", "P8", "LÊ^VĂN^TÁM")
    spec = StudySpec(patient_id="TMP1", patient_name="UNKNOWN^PATIENT", accession="ZZ9",
                     instances=1)
    datasets = make_study(spec)
    assert scu.store_datasets(listener, datasets) == [0]
    with TestClient(create_app(listener.services)) as client:
        unmatched = client.get("/api/studies", params={"unmatched": "true"}).json()
        assert [s["study_uid"] for s in unmatched] == [spec.study_uid]
        assert unmatched[0]["order_status"] == ""
        linked = client.post(f"/api/studies/{spec.study_uid}/link",
                             json={"accession_number": "R2"})
        assert linked.status_code == 200, linked.text
        assert linked.json()["status"] == "completed"
        assert linked.json()["linked_study_uid"] == spec.study_uid
        assert client.get("/api/studies", params={"unmatched": "true"}).json() == []
        # linking the same order to another study, or an unknown study, is refused
        assert client.post("/api/studies/1.2.3.4/link",
                           json={"accession_number": "R2"}).status_code == 404
        retrieved = _wado_instance(client, spec.study_uid, str(datasets[0].SeriesInstanceUID),
                                   str(datasets[0].SOPInstanceUID))
    assert _find_study(listener, spec.study_uid) == {
        "name": "LÊ^VĂN^TÁM", "id": "P8", "acc": "R2", "birth": "19800101"}
    assert retrieved.PatientID == "P8" and retrieved.AccessionNumber == "R2"
    # the placeholder patient is gone from the patient level
    result = scu.find(listener, scu.query("PATIENT", PatientID="TMP1"), model="patient")
    assert result.matches == []


def test_reading_worklist_orders_by_priority_and_reports_turnaround(
        listener: Listener) -> None:
    services = listener.services
    _order(listener, "RW1", "P20", "A^ROUTINE")
    _order(listener, "RW2", "P21", "B^STAT", priority="STAT")
    _order(listener, "RW3", "P22", "C^NOT^DONE")
    for acc, pid in (("RW1", "P20"), ("RW2", "P21")):
        assert scu.store_datasets(listener, make_study(StudySpec(
            patient_id=pid, accession=acc, instances=1))) == [0]
    with TestClient(create_app(services)) as client:
        waiting = client.get("/api/worklist/reading").json()
        assert [w["accession_number"] for w in waiting] == ["RW2", "RW1"]
        assert waiting[0]["waiting_minutes"] is not None
        assert waiting[0]["turnaround"]["order_to_exam"] is not None
        assert waiting[0]["turnaround"]["exam_to_final"] is None
        for status in ("preliminary", "final"):
            assert client.post("/api/orders/RW2/status",
                               json={"status": status}).status_code == 200
        waiting = client.get("/api/worklist/reading").json()
        assert [w["accession_number"] for w in waiting] == ["RW1"]
        done = client.get("/api/worklist/reading", params={"status": "final"}).json()
        assert [d["accession_number"] for d in done] == ["RW2"]
        times = done[0]["turnaround"]
        assert times["exam_to_preliminary"] is not None
        assert times["exam_to_final"] >= times["exam_to_preliminary"] >= 0
        assert times["order_to_final"] >= times["exam_to_final"]
        assert done[0]["waiting_minutes"] is None
        scheduled = client.get("/api/worklist", params={"station_ae": "CT1"}).json()
        assert [s["accession_number"] for s in scheduled] == ["RW3"]


def test_a_failing_listener_never_fails_the_store(listener: Listener, caplog: object) -> None:
    def broken(result: object, origin: object) -> None:
        raise RuntimeError("listener bug")

    listener.services.archive.add_listener(broken)
    _order(listener, "R5", "P30", "ĐẶNG^THU")
    spec = StudySpec(patient_id="P30", accession="R5", instances=1)
    assert scu.store_datasets(listener, make_study(spec)) == [0]
    # the store is acknowledged and indexed; the other listener (matching) still ran
    assert _find_study(listener, spec.study_uid)["acc"] == "R5"
    assert listener.services.orders.get("R5", HTTP).linked_study_uid == spec.study_uid
