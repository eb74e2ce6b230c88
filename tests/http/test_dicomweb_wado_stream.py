"""WADO-RS study streaming: exact Content-Length framing, pieces larger and smaller than the
writer's step, keep-alive reuse, and a cut answer when an object is not its indexed size."""

from __future__ import annotations

import gc
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from io import BytesIO
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient
from pydicom.uid import generate_uid

from ris.services import Services
from storage.corrections import Demographics
from storage.index.query import Level, Query
from storage.origin import CLI
from tests.http.dicomweb_support import DICOM_MULTIPART, live_server, split_multipart, trust
from tests.support.data import StudySpec, make_instance, make_study, write
from viewer_api import create_app
from viewer_api.dicomweb import multipart


def _store_study(services: Services, directory: Path, *,
                 big_rows: int = 0) -> tuple[StudySpec, dict[str, bytes]]:
    """Six small instances in two series, plus one of ``big_rows`` x 1024 16-bit pixels
    (larger than a writer step when ``big_rows`` >= 2100); SOP Instance UID -> bytes."""
    spec = StudySpec(series=2, instances=3)
    datasets = make_study(spec)
    if big_rows:
        datasets.append(make_instance(spec, generate_uid(), 3, 1, rows=big_rows, cols=1024))
    originals = {}
    for ds in datasets:
        path = write(ds, directory)
        services.archive.store(path, CLI)
        originals[str(ds.SOPInstanceUID)] = path.read_bytes()
    return spec, originals


@pytest.fixture
def client(any_services: Services) -> Iterator[TestClient]:
    with TestClient(create_app(any_services)) as c:
        yield c


def test_objects_as_stored_come_with_the_exact_content_length(
        client: TestClient, any_services: Services, tmp_path: Path) -> None:
    """On disk and on S3: the length is announced up front (no chunked framing) and the
    body holds exactly the stored objects, byte for byte."""
    spec, originals = _store_study(any_services, tmp_path / "in")
    response = client.get(f"/dicomweb/studies/{spec.study_uid}",
                          headers={"accept": DICOM_MULTIPART})
    assert response.status_code == 200, response.text
    assert "transfer-encoding" not in response.headers
    assert int(response.headers["content-length"]) == len(response.content)
    parts = split_multipart(response.content, response.headers["content-type"])
    assert sorted(parts) == sorted(originals.values())


def test_corrected_or_transcoded_objects_are_sent_without_a_known_length(
        client: TestClient, any_services: Services, tmp_path: Path) -> None:
    """Sizes of re-written objects are only known once written: no Content-Length then,
    and the parts still carry the re-written objects whole."""
    spec, originals = _store_study(any_services, tmp_path / "in")
    url = f"/dicomweb/studies/{spec.study_uid}"
    implicit = f'{DICOM_MULTIPART}; transfer-syntax=1.2.840.10008.1.2'
    transcoded = client.get(url, headers={"accept": implicit})
    assert transcoded.status_code == 200, transcoded.text
    assert "content-length" not in transcoded.headers
    assert len(split_multipart(transcoded.content, transcoded.headers["content-type"])) == 6

    any_services.archive.correct_study(spec.study_uid, Demographics("P001", "ROE^JANE"), CLI)
    corrected = client.get(url, headers={"accept": DICOM_MULTIPART})
    assert "content-length" not in corrected.headers
    parts = split_multipart(corrected.content, corrected.headers["content-type"])
    assert len(parts) == 6 and all(b"ROE^JANE" in part for part in parts)
    assert not set(parts) & set(originals.values())


def test_a_live_server_streams_large_objects_over_one_kept_alive_connection(
        sqlite_services: Services, tmp_path: Path) -> None:
    """uvicorn on a real socket: an object spanning several writer steps, then the same
    study again on the same connection, which only works if the length was exact."""
    spec, originals = _store_study(sqlite_services, tmp_path / "in", big_rows=2600)
    assert max(len(b) for b in originals.values()) > multipart.CHUNK
    with live_server(sqlite_services) as base, httpx.Client(base_url=base) as http:
        for _ in range(2):
            with http.stream("GET", f"/dicomweb/studies/{spec.study_uid}",
                             headers={"accept": DICOM_MULTIPART}) as response:
                assert response.status_code == 200
                body = b"".join(response.iter_raw())
            assert int(response.headers["content-length"]) == len(body)
            parts = split_multipart(body, response.headers["content-type"])
            assert sorted(parts) == sorted(originals.values())


def _open_objects(services: Services) -> int:
    """Objects of ``services`` this process (and so the in-thread server) has open."""
    root = services.objects.url.removeprefix("file://")
    count = 0
    for fd in os.listdir("/proc/self/fd"):
        try:
            count += os.readlink(f"/proc/self/fd/{fd}").startswith(root)
        except OSError:
            pass
    return count


def test_a_client_leaving_mid_study_leaves_no_object_open(sqlite_services: Services,
                                                          tmp_path: Path) -> None:
    """The client reads the first piece of a study of objects larger than a piece, then
    closes the connection: the server stops, closes the object it was reading, and
    keeps answering."""
    spec, originals = _store_study(sqlite_services, tmp_path / "in", big_rows=2600)
    url = f"/dicomweb/studies/{spec.study_uid}"
    with live_server(sqlite_services) as base:
        for _ in range(3):
            with httpx.Client(base_url=base) as http, \
                    http.stream("GET", url, headers={"accept": DICOM_MULTIPART}) as response:
                next(response.iter_raw(65536))
        deadline = time.monotonic() + 10
        while _open_objects(sqlite_services) and time.monotonic() < deadline:
            gc.collect()
            time.sleep(0.05)
        assert _open_objects(sqlite_services) == 0
        again = httpx.get(base + url, headers={"accept": DICOM_MULTIPART})
        assert sorted(split_multipart(again.content, again.headers["content-type"])) == \
            sorted(originals.values())


def test_a_tls_server_streams_the_same_objects(sqlite_services: Services,
                                               tmp_path: Path) -> None:
    """Over HTTPS the pieces go through the TLS transport, which queues them by reference
    as well: the body is still exact and byte for byte."""
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("openssl (to make a test certificate) is not installed")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run([openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
                    "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True, timeout=60)
    spec, originals = _store_study(sqlite_services, tmp_path / "in", big_rows=2600)
    with live_server(sqlite_services, tls=(cert, key)) as base, \
            httpx.Client(base_url=base, verify=trust(cert)) as http:
        response = http.get(f"/dicomweb/studies/{spec.study_uid}",
                            headers={"accept": DICOM_MULTIPART})
    assert response.status_code == 200
    assert int(response.headers["content-length"]) == len(response.content)
    parts = split_multipart(response.content, response.headers["content-type"])
    assert sorted(parts) == sorted(originals.values())


@pytest.mark.parametrize("change", [-100, +100])
def test_an_object_that_is_not_its_indexed_size_cuts_the_answer(
        sqlite_services: Services, tmp_path: Path, change: int) -> None:
    """A damaged object (shorter or longer than the index says) is never sent with
    misframed parts: the connection is cut before the announced length is reached."""
    spec, _ = _store_study(sqlite_services, tmp_path / "in")
    [ref, *_] = sqlite_services.archive.locate(Query(Level.STUDY, {}), CLI)
    path = Path(sqlite_services.objects.url.removeprefix("file://")) / ref.object_key
    data = path.read_bytes()
    path.write_bytes(data[:change] if change < 0 else data + b"\0" * change)
    with live_server(sqlite_services) as base, httpx.Client(base_url=base) as http:
        with pytest.raises(httpx.RemoteProtocolError):
            with http.stream("GET", f"/dicomweb/studies/{spec.study_uid}",
                             headers={"accept": DICOM_MULTIPART}) as response:
                assert response.status_code == 200  # the status went out before the damage
                b"".join(response.iter_raw())


def test_writer_length_matches_and_fills_steps_across_parts() -> None:
    """body_length predicts the writer's output; small parts share a step, a large one
    spans steps, and every step but the last is full."""
    bodies = [b"a" * 10, b"b" * 3000, b"", b"c" * 70]
    parts = [("application/dicom", len(b), BytesIO(b)) for b in bodies]
    pieces = [bytes(p) for p in multipart.write_parts(iter(parts), "bnd", chunk=1024)]
    assert [len(p) for p in pieces[:-1]] == [1024] * (len(pieces) - 1)
    body = b"".join(pieces)
    assert len(body) == multipart.body_length([(t, s) for t, s, _ in parts], "bnd")
    content_type = 'multipart/related; type="application/dicom"; boundary=bnd'
    assert split_multipart(body, content_type) == bodies
    short = [("application/dicom", 11, BytesIO(b"a" * 10))]
    with pytest.raises(multipart.PartLengthError):
        list(multipart.write_parts(iter(short), "bnd"))
