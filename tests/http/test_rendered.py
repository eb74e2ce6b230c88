"""WADO-RS rendered and thumbnail resources (PS3.18 10.4.1.1.3-4) over HTTP."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
from fastapi.testclient import TestClient
from pydicom import dcmread
from pydicom.uid import generate_uid

from ris.services import Services
from storage.cache import CacheSettings
from storage.index.query import Level, Query
from storage.origin import CLI
from tests.http.dicomweb_support import live_server
from tests.http.problems import assert_problem
from tests.support.data import StudySpec, make_instance, real_file, write
from tests.support.rendering import assert_close, decode_png, monochrome1, reference
from viewer_api import create_app

PNG = {"Accept": "image/png"}
R = "/dicomweb/studies"


@pytest.fixture
def cache_dir(tmp_path: Path) -> Path:
    return tmp_path / "cache" / "rendered"


@pytest.fixture
def client(services: Services, cache_dir: Path) -> Iterator[TestClient]:
    with TestClient(create_app(services, render_cache=CacheSettings(cache_dir))) as c:
        yield c


def _store(services: Services, path: Path) -> tuple[str, str, str]:
    result = services.archive.store(path, CLI)
    return result.study_uid, result.series_uid, result.sop_instance_uid


def _url(uids: tuple[str, str, str]) -> str:
    return f"{R}/{uids[0]}/series/{uids[1]}/instances/{uids[2]}"


@pytest.mark.parametrize("name,frame", [("MR_small.dcm", 1), ("SC_rgb_jpeg_dcmtk.dcm", 1),
                                        ("examples_palette.dcm", 1),
                                        ("examples_ybr_color.dcm", 7)])
def test_rendered_png_matches_the_reference(client: TestClient, services: Services,
                                            name: str, frame: int) -> None:
    uids = _store(services, real_file(name))
    path = f"/frames/{frame}/rendered" if frame > 1 else "/rendered"
    response = client.get(_url(uids) + path, headers=PNG)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "image/png"
    expected = reference(dcmread(real_file(name)), frame)
    assert_close(decode_png(response.content), expected)
    if frame > 1:
        first = client.get(_url(uids) + "/frames/1/rendered", headers=PNG)
        assert not np.array_equal(decode_png(first.content), expected)
        assert_problem(client.get(_url(uids) + "/frames/31/rendered"), 404)
        assert_problem(client.get(_url(uids) + "/frames/1,2/rendered"), 400)
        assert_problem(client.get(_url(uids) + "/frames/0/rendered"), 400)


def test_jpeg_by_default_thumbnails_small_and_viewport_keeps_aspect(
        client: TestClient, services: Services) -> None:
    uids = _store(services, real_file("examples_palette.dcm"))  # 800 x 350
    jpeg = client.get(_url(uids) + "/rendered")
    assert jpeg.status_code == 200 and jpeg.headers["content-type"] == "image/jpeg"
    assert jpeg.content.startswith(b"\xff\xd8") and decode_png(jpeg.content).shape == (350, 800, 3)
    for accept in ("image/*", "*/*", "text/html;q=0.5, image/jpeg"):
        assert client.get(_url(uids) + "/rendered",
                          headers={"Accept": accept}).headers["content-type"] == "image/jpeg"
    thumb = decode_png(client.get(_url(uids) + "/thumbnail").content)
    assert thumb.shape == (56, 128, 3)
    sized = decode_png(client.get(_url(uids) + "/rendered", params={"viewport": "400,400"},
                                  headers=PNG).content)
    assert sized.shape == (175, 400, 3)
    frame_thumb = client.get(_url(uids) + "/frames/1/thumbnail", params={"viewport": "64,64"})
    assert decode_png(frame_thumb.content).shape == (28, 64, 3)


def test_window_parameter_changes_the_output(client: TestClient, services: Services) -> None:
    uids = _store(services, real_file("CT_small.dcm"))
    ds = dcmread(real_file("CT_small.dcm"))
    outputs = []
    for center, width in ((40, 80), (300, 1500)):
        response = client.get(_url(uids) + "/rendered", headers=PNG,
                              params={"window": f"{center},{width},linear"})
        assert response.status_code == 200, response.text
        outputs.append(decode_png(response.content))
        assert_close(outputs[-1], reference(ds, window=(center, width, "LINEAR")))
    assert not np.array_equal(outputs[0], outputs[1])


def test_monochrome1_renders_inverted(client: TestClient, services: Services,
                                      tmp_path: Path) -> None:
    path = monochrome1(tmp_path / "in")
    uids = _store(services, path)
    out = decode_png(client.get(_url(uids) + "/rendered", headers=PNG).content)
    assert_close(out, reference(dcmread(path)))


def _distinct_study(services: Services, tmp_path: Path) -> tuple[str, dict[tuple[int, int], str],
                                                                  dict[int, str]]:
    """Two series of three instances, each image a bright block at its own place; the
    second series is stored first, so order of arrival is not order of Series Number."""
    spec = StudySpec(series=2, instances=3)
    sops: dict[tuple[int, int], str] = {}
    series_uids = {1: generate_uid(), 2: generate_uid()}
    for series in (2, 1):
        for number in (3, 1, 2):
            ds = make_instance(spec, series_uids[series], series, number)
            pixels = np.zeros((8, 8), dtype=np.uint16)
            pixels[series * 2 - 2: series * 2, number * 2 - 2: number * 2] = 1000
            ds.PixelData = pixels.tobytes()
            services.archive.store(write(ds, tmp_path / "study"), CLI)
            sops[(series, number)] = str(ds.SOPInstanceUID)
    return spec.study_uid, sops, series_uids


def test_study_and_series_render_the_middle_instance_of_the_first_series(
        client: TestClient, services: Services, tmp_path: Path) -> None:
    study, sops, series_uids = _distinct_study(services, tmp_path)

    def pixels(url: str) -> np.ndarray:
        response = client.get(url, headers=PNG)
        assert response.status_code == 200, response.text
        return decode_png(response.content)

    instance = {key: pixels(f"{R}/{study}/series/{series_uids[key[0]]}/instances/{sop}/rendered")
                for key, sop in sops.items()}
    assert len({a.tobytes() for a in instance.values()}) == 6  # all different
    assert np.array_equal(pixels(f"{R}/{study}/rendered"), instance[(1, 2)])
    assert np.array_equal(pixels(f"{R}/{study}/series/{series_uids[2]}/rendered"),
                          instance[(2, 2)])
    thumb = pixels(f"{R}/{study}/thumbnail")
    assert thumb.shape == (128, 128)
    assert pixels(f"{R}/{study}/series/{series_uids[1]}/thumbnail").shape == (128, 128)
    services.audit.flush()
    events = [e for e in services.audit.events(action="render") if e.channel == "http"]
    assert len(events) >= 10
    assert all(e.study_uid == study for e in events)


def test_bad_requests_are_problems(client: TestClient, services: Services) -> None:
    uids = _store(services, real_file("MR_small.dcm"))
    sr = _store(services, real_file("test-SR.dcm"))
    url = _url(uids) + "/rendered"
    assert_problem(client.get(url, headers={"Accept": "text/html"}), 406)
    assert_problem(client.get(url, headers={"Accept": "application/dicom"}), 406)
    assert_problem(client.get(f"{R}/1.2.x/rendered"), 400)
    assert_problem(client.get(f"{R}/{uids[0]}/series/{uids[1]}/instances/1..2/rendered"), 400)
    assert_problem(client.get(f"{R}/1.2.3.999/rendered"), 404)
    assert_problem(client.get(f"{R}/{uids[0]}/series/1.2.3.999/thumbnail"), 404)
    assert_problem(client.get(f"{R}/{uids[0]}/series/{uids[1]}/instances/1.2.3.9/rendered"),
                   404)
    # an instance is found only under its own study and series
    assert_problem(client.get(f"{R}/{uids[0]}/series/{sr[1]}/instances/{uids[2]}/rendered"),
                   404)
    assert_problem(client.get(f"{R}/{sr[0]}/series/{uids[1]}/instances/{uids[2]}/thumbnail"),
                   404)
    for params in ({"window": "40"}, {"window": "40,0,linear"}, {"window": "a,b"},
                   {"viewport": "0,10"}, {"viewport": "1,2,3"}, {"quality": "101"},
                   {"quality": "high"}, {"viewport": "10,10,900,900,10,10"}):
        assert_problem(client.get(url, params=params), 400)
    body = assert_problem(client.get(_url(sr) + "/rendered"), 400)
    assert "pixel data" in str(body["detail"])
    assert_problem(client.get(f"{R}/{sr[0]}/thumbnail"), 400)


def test_cache_hit_skips_decoding_and_a_new_revision_invalidates(
        client: TestClient, services: Services, cache_dir: Path, tmp_path: Path) -> None:
    ds = dcmread(real_file("MR_small.dcm"))
    uids = _store(services, real_file("MR_small.dcm"))
    url = _url(uids) + "/rendered"
    first = client.get(url, headers=PNG)
    assert first.status_code == 200
    entries = [p for p in cache_dir.rglob("*") if p.is_file()]
    assert len(entries) == 1
    assert all(uid not in str(entries[0]) for uid in uids)

    # Take the object away from storage: only a cache hit (no read, no decode) can answer.
    ref = services.archive.locate(Query(Level.IMAGE, {"SOPInstanceUID": uids[2]}), CLI)[0]
    original = services.objects.open(ref.object_key).read()
    services.objects.delete(ref.object_key)
    second = client.get(url, headers=PNG)
    assert second.status_code == 200
    assert second.content == first.content
    assert client.get(url, headers={"Accept": "image/jpeg"}).status_code >= 400  # not cached

    # A new revision (same SOP Instance UID, other pixels) is a new object: rendered afresh.
    services.objects.put(ref.object_key, io.BytesIO(original), size=len(original))
    revised = ds.copy()
    revised.PixelData = (ds.pixel_array[::-1]).astype(ds.pixel_array.dtype).tobytes()
    services.archive.store(write(revised, tmp_path / "rev"), CLI)
    third = client.get(url, headers=PNG)
    assert third.status_code == 200
    assert third.content != first.content
    assert_close(decode_png(third.content), reference(revised))


def test_live_server_serves_rendered_images(services: Services) -> None:
    uids = _store(services, real_file("SC_rgb_rle.dcm"))
    with live_server(services) as base:
        response = httpx.get(base + _url(uids) + "/rendered", headers=PNG, timeout=30)
        assert response.status_code == 200, response.text
        assert_close(decode_png(response.content), reference(dcmread(real_file("SC_rgb_rle.dcm"))))
        assert_problem(httpx.get(base + _url(uids) + "/thumbnail",
                                 headers={"Accept": "text/html"}, timeout=30), 406)
