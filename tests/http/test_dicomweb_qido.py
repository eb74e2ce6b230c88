"""QIDO-RS (PS3.18 10.6) over HTTP, on SQLite and PostgreSQL, and with dicomweb-client."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from dicomweb_client.api import DICOMwebClient
from fastapi.testclient import TestClient
from pydicom import dcmread

from ris.services import Services
from storage.origin import Origin
from tests.http.dicomweb_support import live_server, seed
from tests.http.problems import assert_problem
from tests.support.data import StudySpec, real_file
from viewer_api import create_app

JSON = "application/dicom+json"
STUDY_DEFAULTS = {"00080020", "00080030", "00080050", "00080061", "00080090", "00100010",
                  "00100020", "00100030", "00100040", "0020000D", "00200010", "00201206",
                  "00201208", "00080056", "00081190"}


@pytest.fixture
def client(services: Services) -> Iterator[TestClient]:
    with TestClient(create_app(services)) as c:
        yield c


@pytest.fixture
def studies(services: Services, tmp_path: Path) -> list[StudySpec]:
    specs = [
        StudySpec(patient_id="P1", patient_name="SMITH^JOHN", study_date="20250105",
                  modality="CT", series=2, instances=2),
        StudySpec(patient_id="P2", patient_name="Smithers^Ann", study_date="20250120",
                  modality="MR", accession="A002"),
        StudySpec(patient_id="P3", patient_name="JONES^BOB", study_date="20250210",
                  modality="CR", accession="A003"),
    ]
    for spec in specs:
        seed(services, spec, tmp_path / "in")
    return specs


def uids(body: list[dict[str, Any]], tag: str = "0020000D") -> list[str]:
    return [item[tag]["Value"][0] for item in body]


def test_search_for_studies_returns_dicom_json_with_default_keys(
        client: TestClient, studies: list[StudySpec]) -> None:
    response = client.get("/dicomweb/studies", params={"PatientName": "SMITH^JOHN"})
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == JSON
    [match] = response.json()
    assert STUDY_DEFAULTS <= set(match), STUDY_DEFAULTS - set(match)
    assert list(match) == sorted(match)  # attributes in tag order
    assert match["00100010"] == {"vr": "PN", "Value": [{"Alphabetic": "SMITH^JOHN"}]}
    assert match["00201206"] == {"vr": "IS", "Value": [2]}  # numbers as numbers
    assert match["00201208"] == {"vr": "IS", "Value": [4]}
    assert match["00080061"]["Value"] == ["CT"]
    assert match["00080056"]["Value"] == ["ONLINE"]
    study = studies[0].study_uid
    assert match["00081190"] == {"vr": "UR",
                                 "Value": [f"http://testserver/dicomweb/studies/{study}"]}
    assert "00080052" not in match  # no QueryRetrieveLevel in QIDO answers


def test_wildcards_match_names_case_insensitively(client: TestClient,
                                                  studies: list[StudySpec]) -> None:
    body = client.get("/dicomweb/studies", params={"PatientName": "smith*"}).json()
    assert sorted(uids(body)) == sorted(s.study_uid for s in studies[:2])
    by_tag = client.get("/dicomweb/studies", params={"00100010": "JON?S^BOB"}).json()
    assert uids(by_tag) == [studies[2].study_uid]


def test_date_range_uid_list_and_modalities(client: TestClient,
                                            studies: list[StudySpec]) -> None:
    january = client.get("/dicomweb/studies", params={"StudyDate": "20250101-20250131"})
    assert sorted(uids(january.json())) == sorted(s.study_uid for s in studies[:2])
    open_ended = client.get("/dicomweb/studies?StudyDate=20250201-").json()
    assert uids(open_ended) == [studies[2].study_uid]
    wanted = [studies[0].study_uid, studies[2].study_uid]
    listed = client.get("/dicomweb/studies", params={"StudyInstanceUID": ",".join(wanted)})
    assert sorted(uids(listed.json())) == sorted(wanted)
    repeated = client.get("/dicomweb/studies", params=[("StudyInstanceUID", u) for u in wanted])
    assert sorted(uids(repeated.json())) == sorted(wanted)
    modalities = client.get("/dicomweb/studies?ModalitiesInStudy=MR,CR").json()
    assert sorted(uids(modalities)) == sorted(s.study_uid for s in studies[1:])


def test_includefield_forms(client: TestClient, studies: list[StudySpec]) -> None:
    params = [("PatientID", "P1"), ("includefield", "StudyDescription,00080080"),
              ("includefield", "00101010")]
    [match] = client.get("/dicomweb/studies", params=params).json()
    assert match["00081030"]["Value"] == ["CHEST"]  # index column
    assert "00080080" in match and "00101010" in match  # known, empty here
    [every] = client.get("/dicomweb/studies?PatientID=P1&includefield=all").json()
    assert every["00081030"]["Value"] == ["CHEST"]
    assert every["00201200"]["Value"] == [1]  # NumberOfPatientRelatedStudies


def test_series_and_instance_resources(client: TestClient, studies: list[StudySpec]) -> None:
    study = studies[0].study_uid
    series = client.get(f"/dicomweb/studies/{study}/series").json()
    assert len(series) == 2
    assert {s["00080060"]["Value"][0] for s in series} == {"CT"}
    assert all(s["00201209"]["Value"] == [2] for s in series)
    assert "00100010" not in series[0]  # study attributes only when not in the path
    series_uid = series[0]["0020000E"]["Value"][0]
    assert series[0]["00081190"]["Value"] == [
        f"http://testserver/dicomweb/studies/{study}/series/{series_uid}"]

    everywhere = client.get("/dicomweb/series", params={"Modality": "CT"}).json()
    assert len(everywhere) == 2 and everywhere[0]["00100010"]["Value"]  # + study keys

    instances = client.get(f"/dicomweb/studies/{study}/series/{series_uid}/instances").json()
    assert len(instances) == 2
    first = instances[0]
    for tag in ("00080016", "00080018", "00200013", "00280010", "00280011", "00280100"):
        assert tag in first, tag
    assert first["00280010"]["Value"] == [8] and first["00280100"]["Value"] == [16]
    sop = first["00080018"]["Value"][0]
    assert first["00081190"]["Value"] == [
        f"http://testserver/dicomweb/studies/{study}/series/{series_uid}/instances/{sop}"]
    in_study = client.get(f"/dicomweb/studies/{study}/instances").json()
    assert len(in_study) == 4 and "0020000E" in in_study[0]
    anywhere = client.get("/dicomweb/instances", params={"SOPInstanceUID": sop}).json()
    assert uids(anywhere, "00080018") == [sop]
    assert anywhere[0]["00100020"]["Value"] == ["P1"]


def test_limit_and_offset_page_through_all_matches(client: TestClient,
                                                   studies: list[StudySpec]) -> None:
    seen = []
    for offset in range(0, 4, 2):
        page = client.get("/dicomweb/studies", params={"limit": 2, "offset": offset}).json()
        assert len(page) == (2 if offset == 0 else 1)
        seen += uids(page)
    assert sorted(seen) == sorted(s.study_uid for s in studies)
    assert client.get("/dicomweb/studies?offset=10").json() == []


def test_no_match_is_200_with_an_empty_array(client: TestClient,
                                             studies: list[StudySpec]) -> None:
    response = client.get("/dicomweb/studies", params={"PatientID": "NOBODY"})
    assert response.status_code == 200
    assert response.json() == []


BAD = {
    "unknown parameter": "foo=1",
    "unknown tag": "00991099=1",
    "limit not a number": "limit=ten",
    "limit zero": "limit=0",
    "negative offset": "offset=-1",
    "fuzzymatching not boolean": "fuzzymatching=maybe",
    "malformed UID": "StudyInstanceUID=1.2.abc",
    "malformed date": "StudyDate=2025-01-01",
    "attribute twice": "PatientID=A&00100020=B",
    "unknown includefield": "includefield=NoSuchKeyword",
}


@pytest.mark.parametrize("query", BAD.values(), ids=BAD.keys())
def test_bad_parameters_are_400_problems(client: TestClient, query: str) -> None:
    assert_problem(client.get(f"/dicomweb/studies?{query}"), 400)


def test_malformed_uid_in_the_path_is_a_400_problem(client: TestClient) -> None:
    assert_problem(client.get("/dicomweb/studies/1.2.x/series"), 400)
    assert_problem(client.get("/dicomweb/studies/1.2/series/01.2/instances"), 400)


def test_unsupported_features_answer_with_warnings(client: TestClient,
                                                   studies: list[StudySpec]) -> None:
    response = client.get("/dicomweb/studies?PatientID=P1&fuzzymatching=true")
    assert response.status_code == 200 and len(response.json()) == 1
    assert "fuzzymatching" in response.headers["warning"]
    assert response.headers["warning"].startswith("299 ")
    plain = client.get("/dicomweb/studies?PatientID=P1&fuzzymatching=false")
    assert "warning" not in plain.headers
    unmatched = client.get("/dicomweb/studies?PatientID=P1&OperatorsName=X")
    assert "OperatorsName" in unmatched.headers["warning"]
    assert "00081070" in unmatched.json()[0]


def test_server_cap_is_announced(client: TestClient, services: Services,
                                 studies: list[StudySpec]) -> None:
    services.archive.find_limit = 2
    response = client.get("/dicomweb/studies")
    assert len(response.json()) == 2
    assert "additional results" in response.headers["warning"]
    assert "warning" not in client.get("/dicomweb/studies?limit=2").headers


def test_only_dicom_json_is_offered(client: TestClient, studies: list[StudySpec]) -> None:
    xml = 'multipart/related; type="application/dicom+xml"'
    assert_problem(client.get("/dicomweb/studies", headers={"accept": xml}), 406)
    for accept in ("application/dicom+json", "application/json", "*/*",
                   "text/html,application/xhtml+xml,*/*;q=0.8"):
        assert client.get("/dicomweb/studies", headers={"accept": accept}).status_code == 200


def test_cors_lets_a_viewer_on_another_origin_search(client: TestClient) -> None:
    origin = "http://ohif.example.org"
    preflight = client.options("/dicomweb/studies", headers={
        "origin": origin, "access-control-request-method": "GET",
        "access-control-request-headers": "accept"})
    assert preflight.status_code == 200
    assert preflight.headers["access-control-allow-origin"] in ("*", origin)
    answer = client.get("/dicomweb/studies", headers={"origin": origin})
    assert answer.headers["access-control-allow-origin"] in ("*", origin)


def test_c_store_data_is_visible_and_searches_are_audited(
        client: TestClient, services: Services) -> None:
    path = real_file("CT_small.dcm")
    services.archive.store(path, Origin(channel="dimse", calling_ae="MODALITY"))
    original = dcmread(path)
    [match] = client.get("/dicomweb/studies",
                         params={"StudyInstanceUID": original.StudyInstanceUID}).json()
    assert match["00100020"]["Value"] == [original.PatientID]
    assert match["00100010"]["Value"] == [{"Alphabetic": str(original.PatientName)}]
    [instance] = client.get("/dicomweb/instances",
                            params={"SOPInstanceUID": original.SOPInstanceUID}).json()
    assert instance["00280010"]["Value"] == [original.Rows]
    services.audit.flush()
    queries = [e for e in services.audit.events(action="query") if e.channel == "http"]
    assert queries and original.StudyInstanceUID in {e.study_uid for e in queries}


# -- with the real dicomweb-client package against a live server --------------------------

@pytest.fixture
def dicomweb(sqlite_services: Services, tmp_path: Path) -> Iterator[DICOMwebClient]:
    for i in range(5):
        seed(sqlite_services, StudySpec(patient_id=f"Q{i}", patient_name=f"PAGE^{i}",
                                        study_date=f"2024030{i + 1}"), tmp_path / "in")
    seed(sqlite_services, StudySpec(patient_id="S1", patient_name="SMITH^ALICE",
                                    study_date="20250105"), tmp_path / "in")
    with live_server(sqlite_services) as base:
        yield DICOMwebClient(url=f"{base}/dicomweb")


def test_dicomweb_client_searches(dicomweb: DICOMwebClient) -> None:
    found = dicomweb.search_for_studies(search_filters={"PatientName": "SMITH*"})
    assert [s["00100020"]["Value"] for s in found] == [["S1"]]
    march = dicomweb.search_for_studies(search_filters={"StudyDate": "20240302-20240304"},
                                        fields=["StudyDescription"])
    assert sorted(s["00100020"]["Value"][0] for s in march) == ["Q1", "Q2", "Q3"]
    assert all(s["00081030"]["Value"] == ["CHEST"] for s in march)
    assert dicomweb.search_for_studies(search_filters={"PatientID": "NONE"}) == []
    series = dicomweb.search_for_series(found[0]["0020000D"]["Value"][0])
    assert len(series) == 1
    instances = dicomweb.search_for_instances(found[0]["0020000D"]["Value"][0],
                                              series[0]["0020000E"]["Value"][0])
    assert len(instances) == 2


def test_dicomweb_client_paging(dicomweb: DICOMwebClient) -> None:
    pages = [dicomweb.search_for_studies(limit=2, offset=o) for o in (0, 2, 4)]
    assert [len(p) for p in pages] == [2, 2, 2]
    ids = [s["00100020"]["Value"][0] for p in pages for s in p]
    assert sorted(ids) == ["Q0", "Q1", "Q2", "Q3", "Q4", "S1"]
    everything = dicomweb.search_for_studies(limit=4, get_remaining=True)
    assert len(everything) == 6
