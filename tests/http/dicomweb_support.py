"""Shared by the DICOMweb tests: a live uvicorn server, archive seeding, multipart helpers."""

from __future__ import annotations

import ssl
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import uvicorn

from ris.services import Services
from storage.origin import CLI
from tests.support.data import StudySpec, make_study, write
from tests.support.net import free_port
from viewer_api import create_app

DICOM_MULTIPART = 'multipart/related; type="application/dicom"'


def trust(certificate: Path) -> ssl.SSLContext:
    """A client TLS context that trusts exactly ``certificate`` (a self-signed test one)."""
    return ssl.create_default_context(cafile=str(certificate))


@contextmanager
def live_server(services: Services, *, tls: tuple[Path, Path] | None = None) -> Iterator[str]:
    """``create_app(services)`` served by uvicorn on a free loopback port; yields the base URL.

    The server runs in a background thread; it is stopped with ``should_exit`` and joined.
    ``tls`` is ``(certificate, key)`` to serve HTTPS (the base URL is then ``https://``).
    """
    port = free_port()
    config = uvicorn.Config(create_app(services), host="127.0.0.1", port=port,
                            log_level="warning", lifespan="off",
                            ssl_certfile=str(tls[0]) if tls else None,
                            ssl_keyfile=str(tls[1]) if tls else None)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="uvicorn-test", daemon=True)
    thread.start()
    base = f"{'https' if tls else 'http'}://127.0.0.1:{port}"
    deadline = time.monotonic() + 20
    while True:
        try:
            if httpx.get(f"{base}/api/health", timeout=2,
                         verify=trust(tls[0]) if tls else True).status_code < 500:
                break
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline or not thread.is_alive():
            server.should_exit = True
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.05)
    try:
        yield base
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def seed(services: Services, spec: StudySpec, directory: Path) -> list[str]:
    """Store a generated study through the archive service (the C-STORE path); its SOP UIDs."""
    uids = []
    for ds in make_study(spec):
        services.archive.store(write(ds, directory), CLI)
        uids.append(str(ds.SOPInstanceUID))
    return uids


def multipart_body(parts: list[bytes], boundary: str = "b0und4ry",
                   content_type: str = "application/dicom") -> tuple[bytes, str]:
    """A multipart/related body of ``parts`` and the request Content-Type that goes with it."""
    body = b"".join(
        f"--{boundary}\r\nContent-Type: {content_type}\r\n\r\n".encode() + part + b"\r\n"
        for part in parts
    ) + f"--{boundary}--\r\n".encode()
    return body, f'{DICOM_MULTIPART}; boundary="{boundary}"'


def split_multipart(content: bytes, content_type: str) -> list[bytes]:
    """The part bodies of a multipart response, checked against its Content-Length headers."""
    assert content_type.startswith(DICOM_MULTIPART), content_type
    boundary = content_type.split("boundary=", 1)[1].strip('"')
    pieces = content.split(f"--{boundary}".encode())
    assert pieces[0] == b"" and pieces[-1] == b"--\r\n", (pieces[0][:40], pieces[-1][:40])
    parts = []
    for piece in pieces[1:-1]:
        head, _, body = piece.partition(b"\r\n\r\n")
        assert body.endswith(b"\r\n")
        body = body[:-2]
        headers = dict(line.split(": ", 1) for line in head.decode().strip().split("\r\n"))
        assert headers["Content-Type"].startswith("application/dicom")
        assert int(headers["Content-Length"]) == len(body)
        parts.append(body)
    return parts
