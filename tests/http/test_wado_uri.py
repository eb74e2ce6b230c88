"""WADO-URI (PS3.18 9): ``/wado?requestType=WADO&studyUID=&seriesUID=&objectUID=``."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
from fastapi.testclient import TestClient
from pydicom import dcmread

from ris.services import Services
from storage.cache import CacheSettings
from storage.origin import CLI
from tests.http.dicomweb_support import live_server
from tests.http.problems import assert_problem
from tests.support.data import real_file
from tests.support.rendering import assert_close, decode_png, reference
from viewer_api import create_app


@pytest.fixture
def client(services: Services, tmp_path: Path) -> Iterator[TestClient]:
    app = create_app(services, render_cache=CacheSettings(tmp_path / "cache"))
    with TestClient(app) as c:
        yield c


def _params(services: Services, name: str, **extra: str) -> dict[str, str]:
    result = services.archive.store(real_file(name), CLI)
    return {"requestType": "WADO", "studyUID": result.study_uid,
            "seriesUID": result.series_uid, "objectUID": result.sop_instance_uid, **extra}


def test_application_dicom_returns_the_stored_bytes(any_services: Services) -> None:
    """On the filesystem and S3 stores, through a live server: byte for byte as received
    (and rendered from either store)."""
    name = "SC_rgb_jpeg_gdcm.dcm"
    params = _params(any_services, name, contentType="application/dicom")
    with live_server(any_services) as base:
        response = httpx.get(base + "/wado", params=params, timeout=30)
        assert response.status_code == 200, response.text
        assert response.headers["content-type"] == "application/dicom"
        assert response.content == real_file(name).read_bytes()
        same = httpx.get(base + "/wado", timeout=30, params={
            **params, "transferSyntax": dcmread(real_file(name)).file_meta.TransferSyntaxUID})
        assert same.content == response.content
        assert_problem(httpx.get(base + "/wado", timeout=30, params={
            **params, "transferSyntax": "1.2.840.10008.1.2"}), 406)
        png = httpx.get(base + "/wado", params={**params, "contentType": "image/png"},
                        timeout=30)
        assert png.status_code == 200, png.text
        assert_close(decode_png(png.content), reference(dcmread(real_file(name))))
    any_services.audit.flush()
    assert [e for e in any_services.audit.events(action="retrieve") if e.channel == "http"]


def test_image_content_types_and_rendering_parameters(client: TestClient,
                                                      services: Services) -> None:
    params = _params(services, "CT_small.dcm")
    ds = dcmread(real_file("CT_small.dcm"))
    jpeg = client.get("/wado", params=params)
    assert jpeg.status_code == 200, jpeg.text
    assert jpeg.headers["content-type"] == "image/jpeg" and jpeg.content.startswith(b"\xff\xd8")

    png = client.get("/wado", params={**params, "contentType": "image/png"})
    assert png.headers["content-type"] == "image/png"
    assert_close(decode_png(png.content), reference(ds))
    listed = client.get("/wado", params={**params, "contentType": "text/html,image/png"})
    assert listed.headers["content-type"] == "image/png"

    windowed = client.get("/wado", params={**params, "contentType": "image/png",
                                           "windowCenter": "40", "windowWidth": "400"})
    assert_close(decode_png(windowed.content), reference(ds, window=(40, 400, "LINEAR")))
    assert not np.array_equal(decode_png(windowed.content), decode_png(png.content))

    # rows / columns are maxima; the aspect ratio is kept (CT_small is 128 x 128)
    for extra, shape in (({"rows": "64"}, (64, 64)), ({"columns": "32"}, (32, 32)),
                         ({"rows": "100", "columns": "50"}, (50, 50))):
        sized = client.get("/wado", params={**params, "contentType": "image/png", **extra})
        assert decode_png(sized.content).shape == shape, extra
    low = client.get("/wado", params={**params, "imageQuality": "5"})
    assert len(low.content) < len(jpeg.content)


def test_frame_number_selects_the_frame(client: TestClient, services: Services) -> None:
    params = _params(services, "examples_ybr_color.dcm", contentType="image/png")
    ds = dcmread(real_file("examples_ybr_color.dcm"))
    frame = client.get("/wado", params={**params, "frameNumber": "12"})
    assert frame.status_code == 200, frame.text
    assert_close(decode_png(frame.content), reference(ds, 12))
    assert_problem(client.get("/wado", params={**params, "frameNumber": "31"}), 404)


def test_bad_and_unknown_requests_are_problems(client: TestClient, services: Services) -> None:
    params = _params(services, "MR_small.dcm")
    for bad in ({"requestType": "WADO-RS"}, {"objectUID": ""}, {"studyUID": "1.2.abc"},
                {"seriesUID": "not a uid"}, {"windowCenter": "40"},
                {"windowCenter": "40", "windowWidth": "0"}, {"rows": "0"}, {"columns": "x"},
                {"frameNumber": "0"}, {"imageQuality": "0"}, {"anonymize": "yes"},
                {"contentType": "application/dicom", "rows": "64"}):
        assert_problem(client.get("/wado", params={**params, **bad}), 400)
    missing = dict(params)
    del missing["seriesUID"]
    assert_problem(client.get("/wado", params=missing), 400)
    assert_problem(client.get("/wado", params={**params, "contentType": "text/html"}), 406)
    assert_problem(client.get("/wado", params={**params, "objectUID": "1.2.3.999"}), 404)
    assert_problem(client.get("/wado", params={**params, "objectUID": "1.2.3.999",
                                               "contentType": "application/dicom"}), 404)
    sr = _params(services, "test-SR.dcm")
    assert_problem(client.get("/wado", params=sr), 400)
    assert client.get("/wado", params={**sr, "contentType": "application/dicom"}).content == \
        real_file("test-SR.dcm").read_bytes()
