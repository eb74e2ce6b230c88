"""Frames, transcoding and bulk data with the real ``dicomweb-client`` against a live uvicorn.

Objects go in by STOW-RS (``store_instances``) and come back through the client's own
WADO-RS calls, so the server is checked by an independent implementation of PS3.18.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

import numpy as np
import pytest
import requests
from dicomweb_client.api import DICOMwebClient
from pydicom import dcmread
from pydicom.dataset import Dataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

from ris.services import Services
from tests.http.dicomweb_support import live_server
from tests.http.pixel_support import (
    decoded_frame,
    frame_count,
    stored_frame,
    unique_copy,
)
from tests.support.data import StudySpec, make_instance, write

NAMES = ("rtdose.dcm", "rtdose_rle.dcm", "SC_rgb_rle_2frame.dcm", "SC_rgb_jpeg_dcmtk.dcm",
         "examples_jpeg2k.dcm", "JPGExtended.dcm")


def _uids(ds: Dataset) -> tuple[str, str, str]:
    return str(ds.StudyInstanceUID), str(ds.SeriesInstanceUID), str(ds.SOPInstanceUID)


def _bulk_uri(base: str, element: dict[str, object]) -> str:
    """The element's BulkDataURI, checked to be absolute and to point at our service.

    dicomweb-client sends ``Host`` without the port, so the server (which builds absolute
    URIs from ``Host``, like RetrieveURL) answers with a port-less authority; the path
    is what is checked, and the URI is fetched on the live server's own address.
    """
    assert "Value" not in element and "InlineBinary" not in element, element
    uri = urlsplit(str(element["BulkDataURI"]))
    assert uri.scheme == "http" and uri.hostname == "127.0.0.1", uri
    assert uri.path.startswith("/dicomweb/studies/"), uri
    return f"{base}{uri.path}"


@pytest.fixture
def stowed(sqlite_services: Services, tmp_path: Path) -> tuple[str, dict[str, Dataset]]:
    """A live server holding :data:`NAMES` (stored by STOW-RS) and a CT with overlay bulk data."""
    datasets = {name: dcmread(unique_copy(name, tmp_path / "in")) for name in NAMES}
    overlay = make_instance(StudySpec(), generate_uid(), 1, 1, rows=64, cols=64)
    overlay_data = np.random.default_rng(7).integers(0, 256, 2048, np.uint8).tobytes()
    for tag, vr, value in ((0x60000010, "US", 128), (0x60000011, "US", 128),
                           (0x60000040, "CS", "G"), (0x60000050, "SS", [1, 1]),
                           (0x60000100, "US", 1), (0x60000102, "US", 0),
                           (0x60003000, "OW", overlay_data)):  # PS3.3 C.9.2 Overlay Plane
        overlay.add_new(tag, vr, value)
    datasets["overlay"] = dcmread(write(overlay, tmp_path / "in"))  # as a Part 10 file
    with live_server(sqlite_services) as base:
        client = DICOMwebClient(url=f"{base}/dicomweb")
        answer = client.store_instances(list(datasets.values()))
        assert len(answer.ReferencedSOPSequence) == len(datasets)
        yield base, datasets


def test_retrieve_instance_frames_equals_pydicom(
        stowed: tuple[str, dict[str, Dataset]]) -> None:
    base, datasets = stowed
    client = DICOMwebClient(url=f"{base}/dicomweb")
    for name in NAMES:
        ds = datasets[name]
        numbers = list(range(1, frame_count(ds) + 1))
        # the client's default (*/*): frames as stored
        frames = client.retrieve_instance_frames(*_uids(ds), frame_numbers=numbers)
        assert frames == [stored_frame(ds, n - 1) for n in numbers], name
        # what OHIF asks: application/octet-stream, any transfer syntax
        frames = client.retrieve_instance_frames(
            *_uids(ds), frame_numbers=numbers[-1:],
            media_types=(("application/octet-stream", "*"),))
        assert frames == [stored_frame(ds, numbers[-1] - 1)], name
        # uncompressed asked: decoded by the server
        frames = client.retrieve_instance_frames(
            *_uids(ds), frame_numbers=numbers[:1],
            media_types=(("application/octet-stream", ExplicitVRLittleEndian),))
        assert frames == [decoded_frame(ds, 0)], name


def test_transcoding_to_explicit_vr_little_endian(
        stowed: tuple[str, dict[str, Dataset]]) -> None:
    base, datasets = stowed
    client = DICOMwebClient(url=f"{base}/dicomweb")
    for name in NAMES:
        original = datasets[name]
        got = client.retrieve_instance(
            *_uids(original), media_types=(("application/dicom", ExplicitVRLittleEndian),))
        assert got.file_meta.TransferSyntaxUID == ExplicitVRLittleEndian, name
        assert got.SOPInstanceUID == original.SOPInstanceUID
        assert np.array_equal(got.pixel_array, original.pixel_array), name
    # a whole series, one instance at a time; and the stored syntax when it is acceptable
    ds = datasets["rtdose_rle.dcm"]
    series = client.retrieve_series(str(ds.StudyInstanceUID), str(ds.SeriesInstanceUID),
                                    media_types=(("application/dicom", "*"),))
    assert {str(s.file_meta.TransferSyntaxUID) for s in series} >= {"1.2.840.10008.1.2.5"}


def test_metadata_bulk_data_uris_lead_to_the_values(
        stowed: tuple[str, dict[str, Dataset]]) -> None:
    base, datasets = stowed
    client = DICOMwebClient(url=f"{base}/dicomweb")
    native = datasets["rtdose.dcm"]
    meta = client.retrieve_instance_metadata(*_uids(native))
    uri = _bulk_uri(base, meta["7FE00010"])
    assert meta["7FE00010"]["vr"] == "OW"
    assert client.retrieve_bulkdata(uri) == [native.PixelData]

    compressed = datasets["rtdose_rle.dcm"]
    meta = client.retrieve_instance_metadata(*_uids(compressed))
    parts = client.retrieve_bulkdata(_bulk_uri(base, meta["7FE00010"]))
    assert parts == [stored_frame(compressed, i) for i in range(frame_count(compressed))]

    overlay = datasets["overlay"]
    overlay_data = overlay[0x60003000].value
    meta = client.retrieve_instance_metadata(*_uids(overlay))
    element = meta["60003000"]
    uri = _bulk_uri(base, element)
    assert uri.endswith("/bulkdata/60003000")
    assert client.retrieve_bulkdata(uri) == [overlay_data]


def test_problems_over_http(stowed: tuple[str, dict[str, Dataset]]) -> None:
    base, datasets = stowed
    ds = datasets["rtdose.dcm"]
    url = (f"{base}/dicomweb/studies/{ds.StudyInstanceUID}/series/{ds.SeriesInstanceUID}"
           f"/instances/{ds.SOPInstanceUID}")
    cases = [
        (f"{url}/frames/99", {}, 404),
        (f"{url}/frames/1,a", {}, 400),
        (f"{url}/bulkdata/7FE00010/0", {}, 400),
        (f"{url}/bulkdata/00100010", {}, 404),  # not a bulk data element
        (f"{url}/bulkdata/7FE00010", {"accept": "image/jpeg"}, 406),
        (url, {"accept": 'multipart/related; type="application/dicom"; '
                         'transfer-syntax=1.2.840.10008.1.2.4.90'}, 406),
    ]
    for target, headers, status in cases:
        response = requests.get(target, headers=headers, timeout=30)
        assert response.status_code == status, (target, response.text)
        assert response.headers["content-type"] == "application/problem+json"
