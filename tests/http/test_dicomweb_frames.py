"""WADO-RS frames, bulk data and transcoding (PS3.18 10.4), through the real HTTP interface.

The expected bytes are always pydicom's own reading of the original file: its
``get_frame`` for compressed frames, ``pixel_array`` for native and decoded ones.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from pydicom import dcmread
from pydicom.dataset import Dataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

from ris.services import Services
from storage.origin import CLI
from tests.http.pixel_support import (
    decoded_frame,
    frame_count,
    instance_url,
    parts_of,
    stored_frame,
    unique_copy,
)
from tests.http.problems import assert_problem
from tests.support.data import real_file
from viewer_api import create_app

OCTET_ANY = 'multipart/related; type="application/octet-stream"; transfer-syntax=*'
OCTET_LE = 'multipart/related; type="application/octet-stream"; ' \
           f'transfer-syntax={ExplicitVRLittleEndian}'
FILES = {
    # name -> stored transfer syntax (what the frames must come back as, untouched)
    "rtdose.dcm": "1.2.840.10008.1.2",  # native, implicit VR, 15 frames of 32 bits
    "rtdose_expb.dcm": "1.2.840.10008.1.2.2",  # native big endian, 15 frames
    "rtdose_rle.dcm": "1.2.840.10008.1.2.5",  # RLE, 15 frames
    "SC_rgb_rle_2frame.dcm": "1.2.840.10008.1.2.5",  # RLE colour, 2 frames
    "SC_rgb_jpeg_dcmtk.dcm": "1.2.840.10008.1.2.4.50",  # JPEG baseline YBR
    "JPGExtended.dcm": "1.2.840.10008.1.2.4.51",  # JPEG extended 12 bit
    "examples_jpeg2k.dcm": "1.2.840.10008.1.2.4.90",  # JPEG 2000 lossless
    "693_J2KI.dcm": "1.2.840.10008.1.2.4.91",  # JPEG 2000
    "MR_small_jpeg_ls_lossless.dcm": "1.2.840.10008.1.2.4.80",  # JPEG-LS
    "image_dfl.dcm": "1.2.840.10008.1.2.1.99",  # Deflated: read by inflating the object
}


@pytest.fixture
def stored(any_services: Services, tmp_path: Path) -> dict[str, Dataset]:
    """Every file of :data:`FILES` archived under a unique UID; name → original dataset."""
    datasets = {}
    for name in FILES:
        path = unique_copy(name, tmp_path / "in")
        any_services.archive.store(path, CLI)
        datasets[name] = dcmread(path)
    return datasets


@pytest.fixture
def client(any_services: Services) -> Iterator[TestClient]:
    with TestClient(create_app(any_services)) as c:
        yield c


def test_frames_as_stored_by_ranged_reads(client: TestClient,
                                          stored: dict[str, Dataset]) -> None:
    """On SQLite/PostgreSQL × filesystem/S3: every frame, in the order asked, as stored."""
    for name, ds in stored.items():
        n = frame_count(ds)
        numbers = [n, 1] if n > 1 else [1]
        response = client.get(f"{instance_url(ds)}/frames/{','.join(map(str, numbers))}",
                              headers={"accept": OCTET_ANY})
        parts = parts_of(response)
        assert [body for _, body in parts] == [stored_frame(ds, i - 1) for i in numbers], name
        syntax = FILES[name] if ds.file_meta.TransferSyntaxUID.is_encapsulated \
            else ExplicitVRLittleEndian
        assert {ct for ct, _ in parts} == {
            f"application/octet-stream; transfer-syntax={syntax}"}, name


def test_frames_decoded_when_uncompressed_is_asked(client: TestClient,
                                                   stored: dict[str, Dataset]) -> None:
    for name in ("rtdose_rle.dcm", "SC_rgb_jpeg_dcmtk.dcm", "examples_jpeg2k.dcm",
                 "MR_small_jpeg_ls_lossless.dcm", "JPGExtended.dcm"):
        ds = stored[name]
        n = frame_count(ds)
        for accept in (OCTET_LE, 'multipart/related; type="application/octet-stream"', None):
            headers = {"accept": accept or ""}  # empty: the default, octet-stream
            [(content_type, body)] = parts_of(client.get(f"{instance_url(ds)}/frames/{n}",
                                                         headers=headers))
            assert content_type == f"application/octet-stream; transfer-syntax=" \
                                   f"{ExplicitVRLittleEndian}"
            assert body == decoded_frame(ds, n - 1), (name, accept)


def test_frames_in_their_own_media_type(client: TestClient,
                                        stored: dict[str, Dataset]) -> None:
    ds = stored["SC_rgb_jpeg_dcmtk.dcm"]
    for accept in ('multipart/related; type="image/jpeg"',
                   'multipart/related; type="image/jpeg"; transfer-syntax=1.2.840.10008.1.2.4.50',
                   "multipart/related; type=image/*", "*/*"):
        [(content_type, body)] = parts_of(client.get(f"{instance_url(ds)}/frames/1",
                                                     headers={"accept": accept}))
        assert content_type == "image/jpeg; transfer-syntax=1.2.840.10008.1.2.4.50", accept
        assert body == stored_frame(ds, 0)
    rle = stored["rtdose_rle.dcm"]
    [(content_type, _)] = parts_of(client.get(
        f"{instance_url(rle)}/frames/2",
        headers={"accept": 'multipart/related; type="image/x-dicom-rle"'}))
    assert content_type == "image/dicom-rle; transfer-syntax=1.2.840.10008.1.2.5"


def test_frame_problems(client: TestClient, stored: dict[str, Dataset],
                        any_services: Services) -> None:
    rle = stored["rtdose_rle.dcm"]
    url = instance_url(rle)
    for frames in ("16", "1,16"):
        assert_problem(client.get(f"{url}/frames/{frames}"), 404)
    for frames in ("0", "1,,2", "x", "1,1", "-1", "1;2"):
        assert_problem(client.get(f"{url}/frames/{frames}"), 400)
    other = url.rsplit("/", 1)[0] + f"/{generate_uid()}"
    assert_problem(client.get(f"{other}/frames/1"), 404)
    assert_problem(client.get(url.replace(str(rle.SeriesInstanceUID), "1.2.x") + "/frames/1"),
                   400)
    # an image type the stored syntax is not, and a compressed syntax we cannot make
    for accept in ('multipart/related; type="image/jpeg"',
                   'multipart/related; type="application/octet-stream"; '
                   'transfer-syntax=1.2.840.10008.1.2.4.50', "image/png", "application/dicom"):
        assert_problem(client.get(f"{url}/frames/1", headers={"accept": accept}), 406)
    native = stored["rtdose.dcm"]
    assert_problem(client.get(f"{instance_url(native)}/frames/1",
                              headers={"accept": 'multipart/related; type="image/jp2"'}), 406)
    # an instance without pixel data has no frames
    plan = dcmread(real_file("rtplan.dcm"))
    any_services.archive.store(real_file("rtplan.dcm"), CLI)
    assert_problem(client.get(f"{instance_url(plan)}/frames/1"), 404)


def test_frames_route_leaves_rendered_alone(client: TestClient,
                                            stored: dict[str, Dataset]) -> None:
    """``frames/{n}/rendered`` is another resource: the frames route must not answer it."""
    response = client.get(f"{instance_url(stored['rtdose.dcm'])}/frames/1/rendered")
    assert not response.headers.get("content-type", "").startswith("multipart/related")


def test_frames_are_audited(client: TestClient, stored: dict[str, Dataset],
                            any_services: Services) -> None:
    ds = stored["rtdose.dcm"]
    client.get(f"{instance_url(ds)}/frames/3")
    any_services.audit.flush()
    events = [e for e in any_services.audit.events(action="frames") if e.channel == "http"]
    assert [e.study_uid for e in events] == [ds.StudyInstanceUID]
