"""WADO-RS (PS3.18 10.4): instances as stored, and metadata from the index."""

from __future__ import annotations

import json
from collections.abc import Iterator
from io import BytesIO
from pathlib import Path

import pytest
from dicomweb_client.api import DICOMwebClient
from fastapi.testclient import TestClient
from pydicom import dcmread
from pydicom.uid import generate_uid

from ris.services import Services
from storage.dicomio import read_header
from storage.index.query import Level, Query
from storage.origin import CLI
from tests.http.dicomweb_support import live_server, seed, split_multipart
from tests.http.problems import assert_problem
from tests.support.data import StudySpec, make_study, real_file, write
from viewer_api import create_app
from viewer_api.dicomweb import multipart


@pytest.fixture
def client(services: Services) -> Iterator[TestClient]:
    with TestClient(create_app(services)) as c:
        yield c


@pytest.fixture
def study(services: Services, tmp_path: Path) -> tuple[StudySpec, dict[str, bytes]]:
    """A stored study of two series of three instances; SOP Instance UID → original bytes."""
    spec = StudySpec(series=2, instances=3)
    originals = {}
    for ds in make_study(spec):
        path = write(ds, tmp_path / "in")
        services.archive.store(path, CLI)
        originals[str(ds.SOPInstanceUID)] = path.read_bytes()
    return spec, originals


def _series_of(originals: dict[str, bytes]) -> dict[str, list[str]]:
    series: dict[str, list[str]] = {}
    for uid, data in originals.items():
        series.setdefault(dcmread(BytesIO(data)).SeriesInstanceUID, []).append(uid)
    return series


def test_retrieve_study_streams_every_object_as_stored(
        client: TestClient, study: tuple[StudySpec, dict[str, bytes]]) -> None:
    spec, originals = study
    response = client.get(f"/dicomweb/studies/{spec.study_uid}")
    assert response.status_code == 200, response.text
    parts = split_multipart(response.content, response.headers["content-type"])
    assert sorted(parts) == sorted(originals.values())  # byte for byte, no re-encoding


def test_retrieve_series_and_instance(client: TestClient,
                                      study: tuple[StudySpec, dict[str, bytes]]) -> None:
    spec, originals = study
    series_uid, members = next(iter(_series_of(originals).items()))
    base = f"/dicomweb/studies/{spec.study_uid}/series/{series_uid}"
    response = client.get(base)
    parts = split_multipart(response.content, response.headers["content-type"])
    assert sorted(parts) == sorted(originals[m] for m in members)
    one = client.get(f"{base}/instances/{members[0]}",
                     headers={"accept": 'multipart/related; type="application/dicom"'})
    assert split_multipart(one.content, one.headers["content-type"]) == [originals[members[0]]]


def test_unknown_or_mismatched_uids_are_404_problems(
        client: TestClient, study: tuple[StudySpec, dict[str, bytes]]) -> None:
    spec, originals = study
    assert_problem(client.get(f"/dicomweb/studies/{generate_uid()}"), 404)
    series_uid = next(iter(_series_of(originals)))
    # a real series, but under another study
    assert_problem(client.get(f"/dicomweb/studies/{generate_uid()}/series/{series_uid}"), 404)
    assert_problem(client.get(f"/dicomweb/studies/{spec.study_uid}/series/{series_uid}"
                              f"/instances/{generate_uid()}"), 404)
    assert_problem(client.get(f"/dicomweb/studies/{generate_uid()}/metadata"), 404)


@pytest.mark.parametrize("path", ["/dicomweb/studies/1.2.3.x",
                                  "/dicomweb/studies/1.2.3/series/1..2",
                                  "/dicomweb/studies/1.2/series/1.3/instances/*",
                                  "/dicomweb/studies/1.2.03/metadata"])
def test_malformed_uids_are_400_problems(client: TestClient, path: str) -> None:
    assert_problem(client.get(path), 400)


def test_accept_negotiation(client: TestClient,
                            study: tuple[StudySpec, dict[str, bytes]]) -> None:
    spec, originals = study
    url = f"/dicomweb/studies/{spec.study_uid}"
    for refused in ("image/jpeg", "application/dicom+json",
                    'multipart/related; type="application/octet-stream"',
                    'multipart/related; type="image/jpeg"',
                    # a transfer syntax other than the stored one (no transcoding yet)
                    'multipart/related; type="application/dicom"; '
                    'transfer-syntax=1.2.840.10008.1.2.4.50'):
        assert_problem(client.get(url, headers={"accept": refused}), 406)
    for accepted in ("*/*", 'multipart/related; type="application/dicom"; transfer-syntax=*',
                     'multipart/related; type="application/dicom"; '
                     'transfer-syntax=1.2.840.10008.1.2.1',
                     "image/jpeg, multipart/related; type=application/dicom"):
        response = client.get(url, headers={"accept": accepted})
        assert response.status_code == 200, accepted
        assert len(split_multipart(response.content, response.headers["content-type"])) == 6


def test_metadata_comes_from_the_index(client: TestClient, services: Services,
                                       study: tuple[StudySpec, dict[str, bytes]],
                                       tmp_path: Path) -> None:
    spec, originals = study
    for key in _object_keys(services):
        services.objects.delete(key)  # metadata must not read object storage
    response = client.get(f"/dicomweb/studies/{spec.study_uid}/metadata")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/dicom+json"
    headers = response.json()
    assert sorted(h["00080018"]["Value"][0] for h in headers) == sorted(originals)
    sample = headers[0]
    assert sample["00100010"] == {"vr": "PN", "Value": [{"Alphabetic": spec.patient_name}]}
    assert sample["00280010"] == {"vr": "US", "Value": [8]}
    # pixel data is referenced, not inline, by an absolute URI of this service
    assert sample["7FE00010"]["vr"] == "OW" and "Value" not in sample["7FE00010"]
    expected = read_header(tmp_path / "in" / f"{sample['00080018']['Value'][0]}.dcm")
    uri = f"http://testserver/dicomweb{expected.bulk_base()}/7FE00010"
    assert sample["7FE00010"]["BulkDataURI"] == uri
    stored = json.loads(expected.metadata_json())
    stored["7FE00010"]["BulkDataURI"] = uri
    assert stored == sample

    series = _series_of(originals)
    series_uid, members = next(iter(series.items()))
    in_series = client.get(f"/dicomweb/studies/{spec.study_uid}/series/{series_uid}/metadata")
    assert sorted(h["00080018"]["Value"][0] for h in in_series.json()) == sorted(members)
    one = client.get(f"/dicomweb/studies/{spec.study_uid}/series/{series_uid}/instances/"
                     f"{members[0]}/metadata").json()
    assert [h["00080018"]["Value"][0] for h in one] == [members[0]]
    xml = 'multipart/related; type="application/dicom+xml"'
    assert_problem(client.get(f"/dicomweb/studies/{spec.study_uid}/metadata",
                              headers={"accept": xml}), 406)


def _object_keys(services: Services) -> list[str]:
    refs = services.archive.locate(Query(Level.STUDY, {}), CLI)
    return [r.object_key for r in refs]


def test_retrievals_are_audited(client: TestClient, services: Services,
                                study: tuple[StudySpec, dict[str, bytes]]) -> None:
    spec, _ = study
    client.get(f"/dicomweb/studies/{spec.study_uid}")
    client.get(f"/dicomweb/studies/{spec.study_uid}/metadata")
    services.audit.flush()
    for action in ("retrieve", "metadata"):
        events = [e for e in services.audit.events(action=action) if e.channel == "http"]
        assert [e.study_uid for e in events] == [spec.study_uid], action


def _encode(bodies: list[bytes], boundary: str = "bnd") -> list[bytes]:
    files = [("application/dicom", len(b), BytesIO(b)) for b in bodies]
    return list(multipart.write_parts(iter(files), boundary))


def _decode(encoded: bytes, size: int, boundary: str = "bnd") -> list[bytes]:
    reader = multipart.RelatedReader(boundary)
    bodies: list[list[bytes]] = []
    for i in range(0, len(encoded), size):
        for event in reader.feed(encoded[i:i + size]):
            if isinstance(event, multipart.PartStart):
                bodies.append([])
            else:
                bodies[-1].append(event.data)
    reader.close()
    return [b"".join(chunks) for chunks in bodies]


def test_writer_streams_in_chunks_and_reader_round_trips() -> None:
    big = bytes(range(256)) * (3 * multipart.CHUNK // 256 + 7)
    pieces = _encode([big, b"abc"])
    assert max(len(p) for p in pieces) <= multipart.CHUNK + 100  # never a whole object
    encoded = b"".join(pieces)
    content_type = 'multipart/related; type="application/dicom"; boundary=bnd'
    assert split_multipart(encoded, content_type) == [big, b"abc"]
    for size in (65536, 4096, 1000):
        assert _decode(encoded, size) == [big, b"abc"], size
    small = b"".join(_encode([b"\r\n--bn" * 50, b"", b"x"]))
    for size in (1, 2, 7):  # boundaries straddling every possible chunk edge
        assert _decode(small, size) == [b"\r\n--bn" * 50, b"", b"x"], size


# -- with the real dicomweb-client package against a live server --------------------------

def test_dicomweb_client_retrieves_objects_and_metadata(sqlite_services: Services,
                                                        tmp_path: Path) -> None:
    spec = StudySpec(series=1, instances=3)
    seed(sqlite_services, spec, tmp_path / "in")
    sqlite_services.archive.store(real_file("MR_small_jpeg_ls_lossless.dcm"), CLI)
    original = dcmread(real_file("MR_small_jpeg_ls_lossless.dcm"))
    with live_server(sqlite_services) as base:
        client = DICOMwebClient(url=f"{base}/dicomweb")
        [series] = client.search_for_series(spec.study_uid)
        series_uid = series["0020000E"]["Value"][0]
        metadata = client.retrieve_series_metadata(spec.study_uid, series_uid)
        assert len(metadata) == 3
        assert all(m["0020000E"]["Value"] == [series_uid] for m in metadata)
        datasets = client.retrieve_study(spec.study_uid)
        assert len(datasets) == 3
        got = client.retrieve_instance(original.StudyInstanceUID, original.SeriesInstanceUID,
                                       original.SOPInstanceUID)
        assert got.SOPInstanceUID == original.SOPInstanceUID
        assert got.file_meta.TransferSyntaxUID == original.file_meta.TransferSyntaxUID
        assert got.PixelData == original.PixelData
        meta = client.retrieve_instance_metadata(original.StudyInstanceUID,
                                                   original.SeriesInstanceUID,
                                                   original.SOPInstanceUID)
        assert meta["00100020"]["Value"] == [original.PatientID]
