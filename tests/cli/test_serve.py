"""``pacs serve`` as a real process: DICOM and HTTP listeners, clean stop on SIGTERM,
each DICOM connection handed to the least-busy worker process."""

from __future__ import annotations

import errno
import os
import signal
import socket
import ssl
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from pynetdicom import AE
from pynetdicom import sop_class as sc

from ris.services import build_services
from storage import StorageSettings
from tests.cli.helpers import clean_env, pacs_command
from tests.dicom.test_access import self_signed
from tests.support import dcmtk
from tests.support.data import StudySpec, make_study, write
from tests.support.net import free_port

START_TIMEOUT = 30.0
STOP_TIMEOUT = 10.0


@dataclass
class Server:
    proc: subprocess.Popen[bytes]
    cwd: Path
    data_dir: Path
    dicom_port: int
    http_port: int
    log: Path

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def echo(self) -> subprocess.CompletedProcess[str]:
        return dcmtk.run("echoscu", "-aec", "PACS", "-to", "5", "-ta", "5", "-td", "5",
                         "127.0.0.1", str(self.dicom_port), timeout=15)

    def wait_ready(self, echo: Callable[[], bool] | None = None) -> None:
        """Until C-ECHO succeeds and /api/health answers, or fail with the server's log.

        ``echo`` replaces DCMTK's echoscu (e.g. for a TLS listener).
        """
        if echo is None:
            dcmtk.require("echoscu")
        deadline = time.monotonic() + START_TIMEOUT
        echoed = False
        last = ""
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                pytest.fail(f"pacs serve exited with {self.proc.returncode} before it was "
                            f"ready:\n{self.output()}")
            if not echoed and echo is not None:
                echoed = echo()
                last = "C-ECHO failed"
            elif not echoed:
                result = self.echo()
                echoed = result.returncode == 0
                last = result.stdout + result.stderr
            if echoed:
                try:
                    httpx.get(f"{self.base_url}/api/health", timeout=5)
                    return
                except httpx.TransportError as exc:
                    last = repr(exc)
            time.sleep(0.2)
        pytest.fail(f"pacs serve not ready within {START_TIMEOUT:.0f} s ({last}):\n"
                    f"{self.output()}")


def _group_members(pgid: int) -> list[str]:
    """Live (not zombie) processes of process group ``pgid``, as ``"pid command"``."""
    members = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()  # state ppid pgrp ...
        if int(fields[2]) == pgid and fields[0] != "Z":
            members.append(f"{entry.name} {cmdline.strip()}")
    return members


def _port_free(port: int) -> bool:
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # TIME_WAIT is fine
        try:
            sock.bind(("127.0.0.1", port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                return False
            raise
        return True


@pytest.fixture
def start_server(tmp_path: Path) -> Iterator[Callable[..., Server]]:
    """Start ``pacs serve`` on free ports; its whole process group dies at teardown."""
    started: list[Server] = []

    def start(*args: str, workers: int | None = 2, env_settings: bool = True,
              **settings: str) -> Server:
        data = tmp_path / "pacs-data"
        dicom_port, http_port, hl7_port = free_port(), free_port(), free_port()
        env = clean_env(PACS_AUTH="off", PACS_ADMIN_PASSWORD="test-admin-password", **settings)
        if env_settings:
            env.update(PACS_DATA_DIR=str(data), PACS_DICOM_PORT=str(dicom_port),
                       PACS_HTTP_HOST="127.0.0.1", PACS_HTTP_PORT=str(http_port),
                       PACS_HL7_PORT=str(hl7_port))
        if workers is not None:
            env["PACS_DICOM_WORKERS"] = str(workers)
        log = tmp_path / f"serve-{len(started)}.log"
        with log.open("wb") as out:
            proc = subprocess.Popen([*pacs_command(), "serve", *args], cwd=tmp_path, env=env,
                                    stdout=out, stderr=subprocess.STDOUT,
                                    stdin=subprocess.DEVNULL, start_new_session=True)
        server = Server(proc, tmp_path, data, dicom_port, http_port, log)
        started.append(server)
        return server

    yield start
    for server in started:
        if server.proc.poll() is None:
            os.killpg(server.proc.pid, signal.SIGKILL)
            server.proc.wait(10)
        if _group_members(server.proc.pid):  # DICOM workers left behind
            os.killpg(server.proc.pid, signal.SIGKILL)


def _stop(server: Server) -> float:
    """SIGTERM the server; return how long it took to exit (the test fails past the limit)."""
    began = time.monotonic()
    server.proc.send_signal(signal.SIGTERM)
    try:
        server.proc.wait(STOP_TIMEOUT)
    except subprocess.TimeoutExpired:
        pytest.fail(f"pacs serve still running {STOP_TIMEOUT:.0f} s after SIGTERM:\n"
                    f"{server.output()}")
    return time.monotonic() - began


def _counts(data_dir: Path) -> dict[str, int]:
    services = build_services(StorageSettings(
        database_url=f"sqlite:///{data_dir / 'index.db'}",
        storage_url=f"file://{data_dir / 'objects'}"))
    try:
        return services.archive.count()
    finally:
        services.close()


@pytest.mark.dcmtk
@pytest.mark.parametrize("workers", [1, 2], ids=["1-worker", "2-workers"])
def test_serve_answers_dicom_and_http_and_stops_on_sigterm(
        start_server: Callable[..., Server], tmp_path: Path, workers: int) -> None:
    server = start_server(workers=workers)
    server.wait_ready()

    files = [write(ds, tmp_path / "outgoing")
             for ds in make_study(StudySpec(series=1, instances=3))]
    stored = dcmtk.run("storescu", "-aec", "PACS", "-to", "10", "127.0.0.1",
                       str(server.dicom_port), *map(str, files), timeout=30)
    assert stored.returncode == 0, stored.stdout + stored.stderr + server.output()
    assert server.echo().returncode == 0  # still listening after the store

    with httpx.Client(base_url=server.base_url, timeout=10) as http:
        health = http.get("/api/health")
        assert health.status_code == 200, health.text
        body = health.json()
        assert body["status"] == "ok"
        assert body["checks"]["index"]["status"] == "ok"
        assert body["checks"]["storage"]["status"] == "ok"

        peer = {"ae_title": "VIEWER1", "host": "192.0.2.10", "port": 11113,
                "description": "reading room"}
        created = http.post("/api/aes", json=peer)
        assert created.status_code == 201, created.text
        assert created.json() == peer
        assert peer in http.get("/api/aes").json()
        assert http.get("/api/aes/VIEWER1").json() == peer
        removed = http.delete("/api/aes/VIEWER1")
        assert removed.status_code == 204, removed.text
        gone = http.get("/api/aes/VIEWER1")
        assert gone.status_code == 404
        assert gone.headers["content-type"].startswith("application/problem+json")
        assert http.get("/api/aes").json() == []

    pgid = server.proc.pid
    took = _stop(server)
    assert took < STOP_TIMEOUT
    deadline = time.monotonic() + 3
    while _group_members(pgid) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not _group_members(pgid), (
        f"processes of pacs serve outlived it: {_group_members(pgid)}")
    assert _port_free(server.dicom_port), "DICOM port still bound after SIGTERM"
    assert _port_free(server.http_port), "HTTP port still bound after SIGTERM"
    assert "Traceback" not in server.output(), server.output()

    # What was acknowledged is in the archive after the stop.
    assert _counts(server.data_dir)["instances"] == len(files)

    # A graceful stop runs the shutdown path and exits 0; death by the signal (-15)
    # means the cleanup (listeners, workers, audit flush) was skipped.
    assert server.proc.returncode == 0, (
        f"exit status {server.proc.returncode} after SIGTERM\n{server.output()}")


@pytest.mark.dcmtk
def test_serve_reads_the_config_file(start_server: Callable[..., Server],
                                     tmp_path: Path) -> None:
    """SPEC.md: ``pacs serve --config pacs.toml``; the file gives ports and data folder."""
    dicom_port, http_port, hl7_port = free_port(), free_port(), free_port()
    (tmp_path / "pacs.toml").write_text(
        f'dicom_port = {dicom_port}\nhttp_host = "127.0.0.1"\nhttp_port = {http_port}\n'
        f'hl7_port = {hl7_port}\ndata_dir = "toml-data"\ndicom_workers = 1\n')
    server = start_server("--config", "pacs.toml", workers=None, env_settings=False)
    server.dicom_port, server.http_port = dicom_port, http_port
    server.wait_ready()
    assert (tmp_path / "toml-data" / "index.db").is_file()
    _stop(server)
    assert server.proc.returncode == 0, server.output()


# -- connections spread over the workers (pacs.handoff) ---------------------------------------

def _held_per_worker(server: Server) -> dict[int, int]:
    """Established DICOM connections held by each live worker process, by pid.

    Read from /proc: the server-side sockets on the DICOM port (``/proc/net/tcp*``), and
    which worker has each of them open (``/proc/PID/fd``).
    """
    sockets = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()  # sl local_address rem_address st ... uid timeout inode
            local_port = int(fields[1].rsplit(":", 1)[1], 16)
            if local_port == server.dicom_port and fields[3] == "01":  # ESTABLISHED
                sockets.add(f"socket:[{fields[9]}]")
    held = {}
    for member in _group_members(server.proc.pid):
        pid, command = member.split(" ", 1)
        if "multiprocessing.spawn" not in command:
            continue  # `pacs serve` itself, multiprocessing's resource tracker
        try:
            links = [os.readlink(fd) for fd in Path(f"/proc/{pid}/fd").iterdir()]
        except OSError:
            continue  # the worker ended meanwhile
        held[int(pid)] = sum(link in sockets for link in links)
    return held


def _associate(server: Server, tls: ssl.SSLContext | None = None) -> Any:
    """An established Verification association with the server (TLS if ``tls``)."""
    ae = AE(ae_title="SPREADTEST")
    ae.acse_timeout = ae.network_timeout = 10
    ae.add_requested_context(sc.Verification)
    kwargs = {"tls_args": (tls, "127.0.0.1")} if tls is not None else {}
    assoc = ae.associate("127.0.0.1", server.dicom_port, ae_title="PACS", **kwargs)
    assert assoc.is_established, server.output()
    return assoc


def _hold(server: Server, count: int, tls: ssl.SSLContext | None = None) -> list[Any]:
    """``count`` more associations, held open, each answering C-ECHO."""
    held = [_associate(server, tls) for _ in range(count)]
    for assoc in held:
        assert assoc.send_c_echo().Status == 0x0000
    return held


def _spread(server: Server, expected: int) -> list[int]:
    """Associations per worker, once ``expected`` of them are held (sorted, for asserts)."""
    deadline = time.monotonic() + 5
    while True:
        counts = sorted(_held_per_worker(server).values())
        if sum(counts) >= expected or time.monotonic() > deadline:
            return counts
        time.sleep(0.05)


def _release(held: list[Any]) -> None:
    for assoc in held:
        assoc.release()


@pytest.mark.dcmtk
def test_serve_hands_each_association_to_the_least_busy_worker(
        start_server: Callable[..., Server]) -> None:
    """Four workers, four associations held open: one each (the kernel's SO_REUSEPORT hash
    often gave two or three workers all of them); four more: two each."""
    server = start_server(workers=4)
    server.wait_ready()
    held = _hold(server, 4)
    try:
        assert _spread(server, 4) == [1, 1, 1, 1], server.output()
        held += _hold(server, 4)
        assert _spread(server, 8) == [2, 2, 2, 2], server.output()
    finally:
        _release(held)


@pytest.mark.dcmtk
def test_serve_skips_a_dead_worker(start_server: Callable[..., Server]) -> None:
    """A killed worker gets no more connections: new associations go to the live ones."""
    server = start_server(workers=4)
    server.wait_ready()
    victim = min(_held_per_worker(server))
    os.kill(victim, signal.SIGKILL)
    deadline = time.monotonic() + 5
    while victim in _held_per_worker(server) and time.monotonic() < deadline:
        time.sleep(0.05)
    held = _hold(server, 6)  # every one is established and answers
    try:
        assert _spread(server, 6) == [2, 2, 2], server.output()
    finally:
        _release(held)
    assert "is gone; new associations go to the others" in server.output()
    assert server.echo().returncode == 0


@pytest.mark.dcmtk
def test_serve_hands_tls_connections_to_the_workers(
        start_server: Callable[..., Server], tmp_path: Path) -> None:
    """PS3.15 B.1 TLS still works: the worker wraps the socket after the hand-off."""
    cert, key = self_signed(tmp_path)
    server = start_server(workers=4, PACS_DICOM_TLS_CERT=str(cert), PACS_DICOM_TLS_KEY=str(key))
    client = ssl.create_default_context(cafile=str(cert))

    def echo() -> bool:
        try:
            _release(_hold(server, 1, client))
        except AssertionError:
            return False
        return True

    server.wait_ready(echo)
    held = _hold(server, 4, client)
    try:
        assert _spread(server, 4) == [1, 1, 1, 1], server.output()
    finally:
        _release(held)
    assert server.echo().returncode != 0, "a plain connection to the TLS port was accepted"
