"""Radiology reports through the REST API: life cycle, signatures, SR, PDF, ORU^R01.

The life cycle runs against a live uvicorn server with httpx; the SR is found again with
QIDO-RS and read with WADO-RS metadata; the ORU^R01 is received by an ``hl7.mllp`` asyncio
server; the PDF is opened with pypdf. Every case runs on SQLite and PostgreSQL.
"""

from __future__ import annotations

import base64
import hashlib
import io
import os
import stat
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from fastapi.testclient import TestClient
from pypdf import PdfReader
from sqlalchemy import text as sql

from ris.reports.signing import canonical
from ris.services import Services
from storage.origin import CLI
from tests.http.dicomweb_support import live_server, seed
from tests.http.problems import assert_problem
from tests.ris.conftest import OruReceiver, ServicesFactory
from tests.support.data import StudySpec
from tests.support.net import free_port
from viewer_api import create_app

FINDINGS = "Phổi hai bên sáng đều.\nKhông phát hiện tổn thương khu trú."
ADDENDUM = "Bổ sung: đối chiếu phim cũ, không thay đổi."
PATIENT = "NGUYỄN^THỊ MINH KHAI"


@pytest.fixture
def study() -> StudySpec:
    return StudySpec(patient_name=PATIENT, accession="ACC-7", description="CT NGỰC")


def _seed(services: Services, spec: StudySpec, tmp_path: Path) -> None:
    seed(services, spec, tmp_path / "in")


@pytest.fixture
def client(report_services: ServicesFactory, study: StudySpec,
           tmp_path: Path) -> Iterator[TestClient]:
    services = report_services()
    _seed(services, study, tmp_path)
    with TestClient(create_app(services)) as c:
        yield c


def _draft(client: TestClient | httpx.Client, study: StudySpec, text: str = FINDINGS) -> dict:
    created = client.post("/api/reports", json={"study_uid": study.study_uid, "text": text})
    assert created.status_code == 201, created.text
    return created.json()  # type: ignore[no-any-return]


def test_life_cycle_sr_and_oru(report_services: ServicesFactory, study: StudySpec,
                               oru_receiver: OruReceiver, tmp_path: Path) -> None:
    services = report_services(hl7_oru_host="127.0.0.1", hl7_oru_port=oru_receiver.port,
                               institution="Bệnh viện Bạch Mai")
    _seed(services, study, tmp_path)
    changes: list[tuple[str, str, str]] = []
    services.reports.on_status_change.append(lambda s, a, st: changes.append((s, a, st)))
    with live_server(services) as base, httpx.Client(base_url=base, timeout=30) as http:
        report = _draft(http, study, "Phổi")
        assert report["status"] == "draft"
        assert report["accession_number"] == "ACC-7"  # taken from the archived study
        rid = report["id"]
        edited = http.patch(f"/api/reports/{rid}", json={"text": FINDINGS})
        assert edited.status_code == 200 and edited.json()["text"] == FINDINGS
        assert http.post(f"/api/reports/{rid}/preliminary").json()["status"] == "preliminary"
        listed = http.get("/api/reports", params={"study": study.study_uid,
                                                  "status": "preliminary"})
        assert [r["id"] for r in listed.json()] == [rid]
        assert http.get("/api/reports", params={"status": "final"}).json() == []

        signed = http.post(f"/api/reports/{rid}/final", json={"signer": "dr.lan"})
        assert signed.status_code == 200, signed.text
        final = signed.json()
        assert final["status"] == "final" and final["signer"] == "dr.lan"
        assert len(final["digest"]) == 64 and final["signature"]
        assert final["sr_instance_uid"]

        # immutable from now on
        assert_problem(http.patch(f"/api/reports/{rid}", json={"text": "x"}), 409)
        assert_problem(http.post(f"/api/reports/{rid}/preliminary"), 409)
        assert_problem(http.post(f"/api/reports/{rid}/final", json={"signer": "x"}), 409)
        assert http.get(f"/api/reports/{rid}").json()["text"] == FINDINGS

        verified = http.get(f"/api/reports/{rid}/verify").json()
        assert verified["signed"] and verified["intact"], verified

        amended = http.post(f"/api/reports/{rid}/addenda",
                            json={"text": ADDENDUM, "signer": "dr.minh"})
        assert amended.status_code == 201, amended.text
        body = amended.json()
        assert body["status"] == "amended" and body["text"] == FINDINGS
        assert [(a["text"], a["signer"]) for a in body["addenda"]] == [(ADDENDUM, "dr.minh")]
        assert body["sr_instance_uid"] not in ("", final["sr_instance_uid"])
        verified = http.get(f"/api/reports/{rid}/verify").json()
        assert verified["intact"] and [p["what"] for p in verified["parts"]] == [
            "report", "addendum 1"]

        # the SR versions are in the study (QIDO-RS), UTF-8, with the signed text
        found = http.get(f"/dicomweb/studies/{study.study_uid}/instances",
                         params={"Modality": "SR"})
        assert found.status_code == 200, found.text
        sr_uids = sorted(i["00080018"]["Value"][0] for i in found.json())
        assert sr_uids == sorted([final["sr_instance_uid"], body["sr_instance_uid"]])
        series = body["sr_series_uid"]
        meta = http.get(f"/dicomweb/studies/{study.study_uid}/series/{series}/instances/"
                        f"{body['sr_instance_uid']}/metadata").json()[0]
        assert meta["00080016"]["Value"] == ["1.2.840.10008.5.1.4.1.1.88.11"]
        assert meta["00080005"]["Value"] == ["ISO_IR 192"]
        texts = [item["0040A160"]["Value"][0] for item in meta["0040A730"]["Value"]]
        assert texts[0] == FINDINGS and ADDENDUM in texts[1]
        assert "0040A360" in meta  # predecessor: the final version

    # ORU^R01: the final report, then the amended one (result status C)
    assert services.reports.flush(30)
    first = oru_receiver.messages.get(timeout=10)
    second = oru_receiver.messages.get(timeout=10)
    assert str(first.segment("MSH")[9]) == "ORU^R01^ORU_R01"
    assert str(first.segment("PID")[5]) == PATIENT
    assert str(first.segment("OBR")[3]) == "ACC-7"
    assert str(first.segment("OBR")[25]) == "F"
    assert [str(obx[5]) for obx in first.segments("OBX")] == FINDINGS.splitlines()
    assert {str(obx[11]) for obx in first.segments("OBX")} == {"F"}
    assert str(second.segment("OBR")[25]) == "C"
    assert ADDENDUM in [str(obx[5]) for obx in second.segments("OBX")]
    report_row = services.reports.get(rid, CLI)
    assert (report_row.oru_status, report_row.oru_error) == ("sent", "")
    assert [c[2] for c in changes] == ["draft", "preliminary", "final", "amended"]
    assert {c[:2] for c in changes} == {(study.study_uid, "ACC-7")}
    services.audit.flush()
    actions = {e.action for e in services.audit.events(limit=200)}
    assert {"report-create", "report-edit", "report-sign", "report-addendum",
            "report-view", "report-verify", "report-query"} <= actions


def test_pdf_is_one_page_with_vietnamese_text(client: TestClient, study: StudySpec) -> None:
    rid = _draft(client, study)["id"]
    client.post(f"/api/reports/{rid}/final", json={"signer": "bs.Hương"})
    response = client.get(f"/api/reports/{rid}/pdf")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/pdf"
    reader = PdfReader(io.BytesIO(response.content))
    assert len(reader.pages) == 1
    text = reader.pages[0].extract_text()
    for expected in ("Phổi hai bên sáng đều.", "Không phát hiện tổn thương khu trú.",
                     "NGUYỄN THỊ MINH KHAI", "CT NGỰC", "ACC-7", "bs.Hương"):
        assert expected in text, (expected, text)


def test_tampered_rows_are_detected(client: TestClient, study: StudySpec) -> None:
    services: Services = client.app.state.services  # type: ignore[attr-defined]
    rid = _draft(client, study)["id"]
    client.post(f"/api/reports/{rid}/final", json={"signer": "dr.lan"})
    client.post(f"/api/reports/{rid}/addenda", json={"text": ADDENDUM, "signer": "dr.lan"})
    assert client.get(f"/api/reports/{rid}/verify").json()["intact"]

    with services.db.write() as s:  # someone edits the addendum in the database
        s.execute(sql("UPDATE report_addenda SET text = 'changed' WHERE report_fk = :r"),
                  {"r": rid})
    result = client.get(f"/api/reports/{rid}/verify").json()
    assert not result["intact"]
    assert [(p["what"], p["digest_ok"], p["signature_ok"]) for p in result["parts"]] == [
        ("report", True, True), ("addendum 1", False, False)]

    with services.db.write() as s:  # and the report's own text, digest recomputed too
        s.execute(sql("UPDATE reports SET text = 'Bình thường', digest = :d WHERE id = :r"),
                  {"r": rid, "d": "0" * 64})
    result = client.get(f"/api/reports/{rid}/verify").json()
    assert not result["intact"] and not result["parts"][0]["signature_ok"]


def test_signature_checks_with_the_published_key(client: TestClient, study: StudySpec,
                                                  tmp_path: Path) -> None:
    rid = _draft(client, study)["id"]
    report = client.post(f"/api/reports/{rid}/final", json={"signer": "dr.lan"}).json()
    key_file = tmp_path / "keys" / "report-signing.key"
    assert stat.S_IMODE(os.stat(key_file).st_mode) == 0o600
    published = client.get("/api/reports/signing-key").json()
    assert published["algorithm"] == "Ed25519" and published["key_id"] == report["key_id"]
    public = serialization.load_pem_public_key(published["public_key_pem"].encode())
    assert isinstance(public, Ed25519PublicKey)
    content = canonical({"kind": "report", "id": rid, "study_uid": study.study_uid,
                         "accession_number": "ACC-7", "text": FINDINGS, "signer": "dr.lan",
                         "signed_at": report["signed_at"]})
    assert hashlib.sha256(content).hexdigest() == report["digest"]
    public.verify(base64.b64decode(report["signature"]), content)  # raises if invalid


def test_signing_needs_a_user_and_text(client: TestClient, study: StudySpec) -> None:
    rid = _draft(client, study)["id"]
    assert_problem(client.post(f"/api/reports/{rid}/final"), 400)
    assert_problem(client.post(f"/api/reports/{rid}/final", json={"signer": " "}), 400)
    assert client.get(f"/api/reports/{rid}").json()["status"] == "draft"
    empty = _draft(client, study, text="")["id"]
    assert_problem(client.post(f"/api/reports/{empty}/final", json={"signer": "dr"}), 400)
    # an addendum belongs to a signed report only
    assert_problem(client.post(f"/api/reports/{rid}/addenda",
                               json={"text": "x", "signer": "dr"}), 409)


def test_body_signer_refused_when_authentication_is_on(report_services: ServicesFactory,
                                                       study: StudySpec,
                                                       tmp_path: Path) -> None:
    services = report_services(allow_body_signer=False)
    _seed(services, study, tmp_path)
    with TestClient(create_app(services)) as client:
        rid = _draft(client, study)["id"]
        assert_problem(client.post(f"/api/reports/{rid}/final", json={"signer": "dr"}), 403)
        assert client.get(f"/api/reports/{rid}").json()["status"] == "draft"


def test_unknown_study_and_report(client: TestClient) -> None:
    assert_problem(client.post("/api/reports", json={"study_uid": "1.2.3.4"}), 404)
    assert_problem(client.get("/api/reports/999"), 404)
    assert_problem(client.patch("/api/reports/999", json={"text": "x"}), 404)
    assert_problem(client.get("/api/reports/999/verify"), 404)
    assert_problem(client.post("/api/reports", json={"text": "no study"}), 422)
    assert_problem(client.get("/api/reports", params={"status": "signed"}), 422)


def test_oru_failure_is_visible_and_does_not_block_signing(
        report_services: ServicesFactory, study: StudySpec, tmp_path: Path) -> None:
    services = report_services(hl7_oru_host="127.0.0.1", hl7_oru_port=free_port(),
                               hl7_oru_attempts=2, hl7_oru_retry_delay=0.05)
    _seed(services, study, tmp_path)
    with TestClient(create_app(services)) as client:
        rid = _draft(client, study)["id"]
        signed = client.post(f"/api/reports/{rid}/final", json={"signer": "dr.lan"})
        assert signed.status_code == 200 and signed.json()["status"] == "final"
        assert services.reports.flush(30)
        report = client.get(f"/api/reports/{rid}").json()
    assert report["oru_status"] == "failed" and report["oru_attempts"] == 2
    assert "ConnectionRefused" in report["oru_error"]
