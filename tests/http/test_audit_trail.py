"""The audit trail seen by an auditor at ``/api/audit``: records of C-STORE, C-FIND, C-MOVE,
QIDO-RS and WADO-RS with who (user and role, or AE), what, outcome, where from; filters and
CSV export. And DICOMweb through dicomweb-client with a bearer token or Basic credentials."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from dicomweb_client.api import DICOMwebClient
from dicomweb_client.session_utils import create_session_from_auth
from fastapi.testclient import TestClient
from requests.auth import HTTPBasicAuth

from ris.services import Services
from storage.accounts import Role
from tests.conftest import Listener, _listen
from tests.dicom import scu
from tests.http.auth_support import PASSWORD, callers
from tests.http.dicomweb_support import live_server
from tests.support.data import real_dataset, real_file
from viewer_api import create_app

CT = real_dataset("CT_small.dcm")
STUDY, PATIENT = str(CT.StudyInstanceUID), str(CT.PatientID)


@pytest.fixture
def listener(secured: Services) -> Iterator[Listener]:
    yield from _listen(secured)


@pytest.fixture
def client(secured: Services) -> Iterator[TestClient]:
    with TestClient(create_app(secured)) as c:
        yield c


def test_dimse_and_dicomweb_accesses_are_audited(listener: Listener, client: TestClient,
                                                 secured: Services) -> None:
    assert scu.store_files(listener, [real_file("CT_small.dcm")], ae_title="MODALITY") == [0]
    found = scu.find(listener, scu.query("STUDY", StudyInstanceUID=STUDY, PatientID=""),
                     ae_title="VIEWER")
    assert len(found.matches) == 1
    with scu.storage_scp("DEST") as dest:
        secured.aes.add("DEST", dest.host, dest.port)
        moved = scu.move(listener, scu.query("STUDY", StudyInstanceUID=STUDY), "DEST",
                         ae_title="VIEWER")
        assert moved.statuses[-1] == 0
    who = callers(client)
    referring = who.headers(Role.REFERRING)
    assert client.get("/dicomweb/studies", params={"StudyInstanceUID": STUDY},
                      headers=referring).status_code == 200
    assert client.get(f"/dicomweb/studies/{STUDY}/metadata", headers=referring).status_code \
        == 200
    assert client.get(f"/dicomweb/studies/{STUDY}", headers=referring).status_code == 200
    secured.audit.flush()

    auditor = who.headers(Role.AUDITOR)
    response = client.get("/api/audit", params={"study_uid": STUDY, "limit": 100},
                          headers=auditor)
    assert response.status_code == 200, response.text
    rows = response.json()
    seen = {(r["channel"], r["action"], r["calling_ae"] or r["username"], r["role"])
            for r in rows}
    assert ("dimse", "store", "MODALITY", "") in seen
    assert ("dimse", "query", "VIEWER", "") in seen
    assert ("dimse", "move", "VIEWER", "") in seen
    assert ("http", "query", "referring-user", "referring") in seen  # QIDO-RS
    assert ("http", "metadata", "referring-user", "referring") in seen  # WADO-RS metadata
    assert ("http", "retrieve", "referring-user", "referring") in seen  # WADO-RS instances
    store = next(r for r in rows if r["action"] == "store")
    assert store["patient_id"] == PATIENT and store["outcome"] == "stored"
    assert store["address"].startswith("127.0.0.1:") and store["at"]
    assert all(len(r["hash"]) == 64 for r in rows)

    only_http = client.get("/api/audit", params={"user": "referring-user", "action": "query"},
                           headers=auditor).json()
    assert [(r["username"], r["action"]) for r in only_http] == [("referring-user", "query")]
    assert client.get("/api/audit", params={"since": "2999-01-01T00:00:00Z"},
                      headers=auditor).json() == []

    secured.audit.flush()  # the searches above are audited by the batched writer
    export = client.get("/api/audit", params={"format": "csv", "study_uid": STUDY},
                        headers=auditor)
    assert export.status_code == 200 and export.headers["content-type"].startswith("text/csv")
    table = list(csv.DictReader(io.StringIO(export.text)))
    extra = {r["seq"] for r in table} - {str(r["seq"]) for r in rows}
    assert {r["seq"] for r in table} >= {str(r["seq"]) for r in rows}
    assert {r["action"] for r in table if r["seq"] in extra} == {"audit-query"}  # the search
    assert {r["action"] for r in table} >= {"store", "query", "move", "metadata", "retrieve"}

    secured.audit.flush()
    audit_reads = client.get("/api/audit", params={"action": "audit-query"},
                             headers=auditor).json()
    assert {r["username"] for r in audit_reads} == {"auditor-user"}
    chain = client.get("/api/audit/verify", headers=auditor).json()
    assert chain["intact"] is True and chain["records"] > len(rows)


def test_dicomweb_client_with_a_token_or_basic(secured: Services, tmp_path: Path) -> None:
    secured.archive.store(real_file("CT_small.dcm"), scu.ARCHIVE_READER)
    with live_server(secured) as base:
        token = requests.post(f"{base}/api/auth/token", auth=("radiologist-user", PASSWORD),
                              timeout=30).json()["access_token"]
        client = DICOMwebClient(f"{base}/dicomweb",
                                headers={"Authorization": f"Bearer {token}"})
        (study,) = client.search_for_studies()
        assert study["0020000D"]["Value"] == [STUDY]
        (instance,) = client.retrieve_study(STUDY)
        assert str(instance.SOPInstanceUID) == str(CT.SOPInstanceUID)

        session = create_session_from_auth(HTTPBasicAuth("referring-user", PASSWORD))
        basic = DICOMwebClient(f"{base}/dicomweb", session=session)
        assert len(basic.search_for_series(STUDY)) == 1

        anonymous = DICOMwebClient(f"{base}/dicomweb")
        with pytest.raises(requests.HTTPError) as refused:
            anonymous.search_for_studies()
        assert refused.value.response.status_code == 401
        auditor = requests.post(f"{base}/api/auth/token", auth=("auditor-user", PASSWORD),
                                timeout=30).json()["access_token"]
        with pytest.raises(requests.HTTPError) as forbidden:
            DICOMwebClient(f"{base}/dicomweb",
                           headers={"Authorization": f"Bearer {auditor}"}).search_for_studies()
        assert forbidden.value.response.status_code == 403
