"""OHIF v3 as a client: its DicomWebDataSource request sequence replayed on a live server.

The requests are those of OHIF's ``extensions/default/src/DicomWebDataSource`` (qido.js
``mapParams`` for the study list, ``seriesInStudy``, the async metadata loader per
series) and of cornerstone's WADO-RS image loader (``frames/{n}`` with
``multipart/related; type=application/octet-stream; transfer-syntax=*``, the part's
``transfer-syntax`` parameter choosing the decoder), each preceded by the CORS preflight
a browser sends because of the ``Authorization`` header.
"""

from __future__ import annotations

from pathlib import Path

import httpx
from pydicom import dcmread

from ris.services import Services
from storage.origin import CLI
from tests.http.dicomweb_support import live_server, seed
from tests.http.pixel_support import unique_copy
from tests.support.data import StudySpec

ORIGIN = "http://ohif.example:3000"
JSON = {"accept": "application/dicom+json", "origin": ORIGIN}
FRAME_ACCEPT = "multipart/related; type=application/octet-stream; transfer-syntax=*"


def _preflight(http: httpx.Client, url: str) -> None:
    response = http.options(url, headers={
        "origin": ORIGIN, "access-control-request-method": "GET",
        "access-control-request-headers": "authorization,accept"})
    assert response.status_code == 200, response.text
    assert response.headers["access-control-allow-origin"] in ("*", ORIGIN)
    assert "authorization" in response.headers["access-control-allow-headers"].lower()


def _get(http: httpx.Client, url: str, **params: str) -> list[dict]:
    _preflight(http, url)
    response = http.get(url, params=params, headers=JSON)
    assert response.status_code == 200, (url, response.text)
    assert response.headers["access-control-allow-origin"] in ("*", ORIGIN)
    return response.json()  # type: ignore[no-any-return]


def _value(element: dict, default: object = None) -> object:
    return (element.get("Value") or [default])[0]


def _cornerstone_frame(http: httpx.Client, url: str) -> tuple[str, bytes]:
    """What cornerstone's ``extractMultipart`` + ``getTransferSyntaxForContentType`` see."""
    _preflight(http, url)
    response = http.get(url, headers={"accept": FRAME_ACCEPT, "origin": ORIGIN})
    assert response.status_code == 200, (url, response.text)
    assert response.headers["access-control-allow-origin"] in ("*", ORIGIN)
    body = response.content
    header_end = body.index(b"\r\n\r\n")
    lines = body[:header_end].decode("latin-1").split("\r\n")
    boundary = next(line for line in lines if line.startswith("--"))
    content_type = next(line[13:].strip() for line in lines if line.startswith("Content-Type:"))
    end = body.index(boundary.encode(), header_end + 4)
    params = dict(p.strip().split("=", 1) for p in content_type.split(";")[1:] if "=" in p)
    syntax = params.get("transfer-syntax", "1.2.840.10008.1.2").strip('"')
    return syntax, body[header_end + 4:end - 2]


def test_ohif_study_list_and_viewer(sqlite_services: Services, tmp_path: Path) -> None:
    spec = StudySpec(patient_name="NGUYEN^VAN A", description="CT CHEST", instances=2)
    seed(sqlite_services, spec, tmp_path / "in")
    rle_path = unique_copy("rtdose_rle.dcm", tmp_path / "rle")  # RLE, 15 frames
    sqlite_services.archive.store(rle_path, CLI)
    rle = dcmread(rle_path)
    with live_server(sqlite_services) as base, httpx.Client(timeout=30) as http:
        root = f"{base}/dicomweb"
        # 1. the study list (qido.js mapParams)
        studies = _get(http, f"{root}/studies", limit="101", offset="0",
                       fuzzymatching="false",
                       includefield="00081030,00080060,00080090,00100030")
        by_uid = {_value(s["0020000D"]): s for s in studies}
        assert set(by_uid) == {spec.study_uid, str(rle.StudyInstanceUID)}
        assert _value(by_uid[spec.study_uid]["00081030"]) == "CT CHEST"
        assert _value(by_uid[spec.study_uid]["00201208"]) == 2
        # a search as typed in the list: wildcard patient name, date range, modality
        found = _get(http, f"{root}/studies", PatientName="*NGUYEN*",
                     StudyDate="20250101-20250131", ModalitiesInStudy="CT", limit="101",
                     offset="0", fuzzymatching="false",
                     includefield="00081030,00080060,00080090,00100030")
        assert [_value(s["0020000D"]) for s in found] == [spec.study_uid]

        for study_uid in (spec.study_uid, str(rle.StudyInstanceUID)):
            # 2. opening the viewer: the study by UID, its series, then metadata per series
            [study] = _get(http, f"{root}/studies", StudyInstanceUID=study_uid)
            assert _value(study["0020000D"]) == study_uid
            series = _get(http, f"{root}/studies/{study_uid}/series",
                          includefield="0008103E,00080021")
            assert series and all(_value(s["0020000D"]) == study_uid for s in series)
            for one in _get(http, f"{root}/studies/{study_uid}/series"):
                series_uid = _value(one["0020000E"])
                instances = _get(http, f"{root}/studies/{study_uid}/series/{series_uid}/metadata")
                assert instances
                for meta in instances:
                    assert str(meta["7FE00010"]["BulkDataURI"]).startswith("http")
                    sop = _value(meta["00080018"])
                    frames = int(_value(meta.get("00280008", {}), 1))
                    # 3. the image loader: every frame (thumbnailRendering wadors = frame 1)
                    for n in range(1, frames + 1):
                        syntax, data = _cornerstone_frame(
                            http, f"{root}/studies/{study_uid}/series/{series_uid}"
                                  f"/instances/{sop}/frames/{n}")
                        stored = str(rle.file_meta.TransferSyntaxUID) \
                            if study_uid == str(rle.StudyInstanceUID) else None
                        if stored:
                            assert syntax == stored
                        else:
                            assert syntax == "1.2.840.10008.1.2.1"
                            rows, cols = _value(meta["00280010"]), _value(meta["00280011"])
                            assert len(data) == rows * cols * 2  # 16 bits allocated
        # an unknown study opened from a stale link: an empty list, not an error
        assert _get(http, f"{root}/studies", StudyInstanceUID="1.2.3.4") == []
