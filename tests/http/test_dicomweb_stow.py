"""STOW-RS (PS3.18 10.5): the C-STORE ingest path over HTTP, with per-instance failures."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from dicomweb_client.api import DICOMwebClient
from fastapi.testclient import TestClient
from pydicom import dcmread
from pydicom.dataset import Dataset
from pydicom.uid import generate_uid

from ris.services import Services
from storage.errors import ERRORS
from tests.http.dicomweb_support import live_server, multipart_body
from tests.http.problems import assert_problem
from tests.support.data import REAL_FILES, StudySpec, make_study, real_dataset, real_file, write
from viewer_api import create_app
from viewer_api.dicomweb import stow

REFERENCED, FAILED, REASON = "00081199", "00081198", "00081197"
A900 = ERRORS["DatasetDoesNotMatchSopClass"].store
C000 = ERRORS["UnreadableDataset"].store


@pytest.fixture
def client(services: Services, tmp_path: Path,
           monkeypatch: pytest.MonkeyPatch) -> Iterator[TestClient]:
    spool = tmp_path / "spool"
    spool.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(spool))
    with TestClient(create_app(services)) as c:
        yield c
    assert list(spool.iterdir()) == []  # every spooled part is removed


def _post(client: TestClient, parts: list[bytes], url: str = "/dicomweb/studies",
          **kwargs: Any) -> Any:
    body, content_type = multipart_body(parts, **kwargs)
    return client.post(url, content=body, headers={"content-type": content_type})


def _study_files(tmp_path: Path, **spec: Any) -> tuple[StudySpec, list[bytes]]:
    study = StudySpec(**spec)
    return study, [write(ds, tmp_path / "in").read_bytes() for ds in make_study(study)]


def _count(services: Services) -> int:
    return services.archive.count()["instances"]


def test_store_then_search_and_retrieve(client: TestClient, services: Services,
                                        tmp_path: Path) -> None:
    spec, parts = _study_files(tmp_path, instances=3)
    response = _post(client, parts)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/dicom+json"
    body = response.json()
    assert FAILED not in body
    items = body[REFERENCED]["Value"]
    assert len(items) == 3
    assert body["00081190"]["Value"] == [f"http://testserver/dicomweb/studies/{spec.study_uid}"]
    for item, part in zip(items, parts, strict=True):
        original = dcmread(tmp_path / "in" / f"{item['00081155']['Value'][0]}.dcm")
        assert item["00081150"]["Value"] == [original.SOPClassUID]
        url = item["00081190"]["Value"][0]
        assert url.endswith(f"/studies/{spec.study_uid}/series/{original.SeriesInstanceUID}"
                            f"/instances/{original.SOPInstanceUID}")
        retrieved = client.get(url.removeprefix("http://testserver"))
        assert retrieved.status_code == 200
        assert part in retrieved.content  # the stored bytes are the sent bytes
    found = client.get("/dicomweb/instances", params={"StudyInstanceUID": spec.study_uid})
    assert len(found.json()) == 3
    services.audit.flush()
    assert len([e for e in services.audit.events(action="store")
                if e.channel == "http"]) == 3


def test_some_bad_parts_is_202_with_failure_reasons(client: TestClient, services: Services,
                                                    tmp_path: Path) -> None:
    _, [good] = _study_files(tmp_path, instances=1)
    no_uid = make_study(StudySpec(instances=1))[0]
    del no_uid.SeriesInstanceUID  # a Type 1 UID is missing: 0xA900
    no_uid_bytes = write_dataset(no_uid, tmp_path)
    response = _post(client, [good, b"this is not DICOM at all" * 10, no_uid_bytes])
    assert response.status_code == 202, response.text
    body = response.json()
    assert len(body[REFERENCED]["Value"]) == 1
    reasons = [item[REASON]["Value"][0] for item in body[FAILED]["Value"]]
    assert reasons == [C000, A900] == [49152, 43264]
    assert _count(services) == 1


def write_dataset(ds: Dataset, tmp_path: Path) -> bytes:
    path = tmp_path / "bad" / f"{generate_uid()}.dcm"
    path.parent.mkdir(exist_ok=True)
    ds.save_as(path, enforce_file_format=True)
    return path.read_bytes()


def test_nothing_stored_is_409(client: TestClient, services: Services) -> None:
    response = _post(client, [b"garbage" * 100, b"\0" * 200])
    assert response.status_code == 409, response.text
    body = response.json()
    assert REFERENCED not in body
    assert [i[REASON]["Value"][0] for i in body[FAILED]["Value"]] == [C000, C000]
    assert _count(services) == 0


def test_study_in_the_url_must_match(client: TestClient, services: Services,
                                     tmp_path: Path) -> None:
    spec, parts = _study_files(tmp_path, instances=2)
    wrong = _post(client, parts, url=f"/dicomweb/studies/{generate_uid()}")
    assert wrong.status_code == 409, wrong.text
    items = wrong.json()[FAILED]["Value"]
    assert [i[REASON]["Value"][0] for i in items] == [A900, A900]
    assert all(i["00081155"]["Value"][0] for i in items)  # failures name the instance
    assert _count(services) == 0
    right = _post(client, parts, url=f"/dicomweb/studies/{spec.study_uid}")
    assert right.status_code == 200, right.text
    assert _count(services) == 2
    services.audit.flush()
    failures = [e for e in services.audit.events(action="store") if e.outcome == "failed"]
    assert len(failures) == 2


def test_unexpected_error_is_failure_reason_0110(client: TestClient, services: Services,
                                                 tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    def explode(*args: object, **kwargs: object) -> None:
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(services.archive, "store", explode)
    _, parts = _study_files(tmp_path, instances=1)
    response = _post(client, parts)
    assert response.status_code == 409
    assert response.json()[FAILED]["Value"][0][REASON]["Value"] == [0x0110]


@pytest.mark.parametrize("content_type", [
    "application/dicom",
    "multipart/form-data; boundary=x",
    'multipart/related; type="application/dicom+json"; boundary=x',
    "",
])
def test_wrong_content_type_is_415(client: TestClient, content_type: str) -> None:
    response = client.post("/dicomweb/studies", content=b"--x--\r\n",
                           headers={"content-type": content_type})
    assert_problem(response, 415)


@pytest.mark.parametrize("body", [
    b"",  # no part, no closing boundary
    b"--b0und4ry\r\nContent-Type: application/dicom\r\n\r\nDICM",  # cut short
    b"--b0und4ry--\r\n",  # no part at all
    b"--b0und4ry\r\nno header separator" + b"x" * 20000,
], ids=["empty", "truncated", "no parts", "endless headers"])
def test_malformed_bodies_are_400(client: TestClient, services: Services, body: bytes) -> None:
    content_type = 'multipart/related; type="application/dicom"; boundary=b0und4ry'
    response = client.post("/dicomweb/studies", content=body,
                           headers={"content-type": content_type})
    assert_problem(response, 400)
    assert _count(services) == 0


def test_missing_boundary_and_malformed_study_uid_are_400(client: TestClient) -> None:
    response = client.post("/dicomweb/studies", content=b"x",
                           headers={"content-type": 'multipart/related; type="application/dicom"'})
    assert_problem(response, 400)
    body, content_type = multipart_body([b"x"])
    assert_problem(client.post("/dicomweb/studies/1.2.x", content=body,
                               headers={"content-type": content_type}), 400)


def test_size_limit_is_413_and_nothing_is_stored(client: TestClient, services: Services,
                                                 tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    _, parts = _study_files(tmp_path, instances=2)
    body, content_type = multipart_body(parts)
    monkeypatch.setattr(stow, "MAX_STOW_BYTES", len(body) - 1)
    assert_problem(client.post("/dicomweb/studies", content=body,
                               headers={"content-type": content_type}), 413)

    def chunked() -> Iterator[bytes]:  # no Content-Length: the limit applies while reading
        for i in range(0, len(body), 1000):
            yield body[i:i + 1000]

    assert_problem(client.post("/dicomweb/studies", content=chunked(),
                               headers={"content-type": content_type}), 413)
    assert _count(services) == 0
    monkeypatch.setattr(stow, "MAX_STOW_BYTES", len(body))
    assert client.post("/dicomweb/studies", content=chunked(),
                       headers={"content-type": content_type}).status_code == 200


def test_preamble_padding_and_epilogue_are_tolerated(client: TestClient, services: Services,
                                                     tmp_path: Path) -> None:
    _, [part] = _study_files(tmp_path, instances=1)
    body = (b"preamble to ignore\r\n--B \t\r\nContent-Type: application/dicom\r\n\r\n" + part
            + b"\r\n--B--  \r\nepilogue to ignore")
    response = client.post("/dicomweb/studies", content=body, headers={
        "content-type": "multipart/related; boundary=B; type=application/dicom"})
    assert response.status_code == 200, response.text
    assert _count(services) == 1


# -- with the real dicomweb-client package against a live server --------------------------

@pytest.fixture
def dicomweb(sqlite_services: Services) -> Iterator[DICOMwebClient]:
    with live_server(sqlite_services) as base:
        yield DICOMwebClient(url=f"{base}/dicomweb")


def test_dicomweb_client_store_then_retrieve_equals_original(
        dicomweb: DICOMwebClient, sqlite_services: Services) -> None:
    originals = [real_dataset(name) for name in REAL_FILES]
    result = dicomweb.store_instances(originals)
    assert "FailedSOPSequence" not in result
    assert len(result.ReferencedSOPSequence) == len(REAL_FILES)
    for name, original in zip(REAL_FILES, originals, strict=True):
        got = dicomweb.retrieve_instance(original.StudyInstanceUID,
                                         original.SeriesInstanceUID, original.SOPInstanceUID)
        assert got.SOPInstanceUID == original.SOPInstanceUID, name
        if "PixelData" in original:
            assert got.PixelData == dcmread(real_file(name)).PixelData, name
    found = dicomweb.search_for_instances(search_filters={"SOPInstanceUID": ",".join(
        o.SOPInstanceUID for o in originals[:3])})
    assert len(found) == 3


def test_dicomweb_client_sees_partial_and_failed_stores(
        dicomweb: DICOMwebClient, sqlite_services: Services) -> None:
    good = real_dataset("CT_small.dcm")
    other = real_dataset("MR_small_jpeg_ls_lossless.dcm")
    partial = dicomweb.store_instances([good, other], study_instance_uid=good.StudyInstanceUID)
    assert [i.ReferencedSOPInstanceUID for i in partial.ReferencedSOPSequence] == [
        good.SOPInstanceUID]
    assert [i.FailureReason for i in partial.FailedSOPSequence] == [0xA900]
    with pytest.raises(requests.HTTPError) as refused:
        dicomweb.store_instances([other], study_instance_uid=good.StudyInstanceUID)
    assert refused.value.response.status_code == 409
    assert sqlite_services.archive.count()["instances"] == 1
