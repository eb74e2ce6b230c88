"""C-STORE received in the DUL thread (pacs/scp/store_receiver.py), over real associations.

The receiver must store exactly what pynetdicom's receive path stores (same file bytes,
same digest), whatever the fragmentation (a 4 KiB maximum PDU, command and data set in
one PDU), from pynetdicom, DCMTK storescu and over TLS; refusals come back with their
status and Error Comment; a malformed or out-of-order message gets what pynetdicom gives
(a failure status or an A-ABORT) and the listener keeps serving; with a handler watching
PDUs, pynetdicom's path is used.
"""

from __future__ import annotations

import errno
import hashlib
import logging
import os
import socket
import ssl
import struct
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from io import BytesIO
from pathlib import Path
from typing import Any

import pytest
from pydicom.dataset import Dataset
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid
from pynetdicom import AE, evt
from pynetdicom.dimse_messages import C_STORE_RQ
from pynetdicom.dimse_primitives import C_STORE
from pynetdicom.dsutils import decode
from sqlalchemy import select

from pacs.ae import DicomSettings, start_dicom
from pacs.scp import store_receiver
from ris.services import Services, build_services
from storage import StorageSettings
from storage.archive import StoreResult
from storage.index.migrate import upgrade
from storage.index.models import Instance, Patient, Series, Study
from storage.objects.filesystem import STAGING
from tests.dicom import scu
from tests.dicom.test_access import self_signed
from tests.support.data import REAL_FILES, StudySpec, make_instance, make_study, write
from tests.support.dcmtk import run
from tests.support.net import free_port


@dataclass
class Served:
    host: str
    port: int
    ae_title: str
    services: Services
    server: Any
    receivers: list[Any] = field(default_factory=list)

    @property
    def fast_stores(self) -> int:
        """C-STORE requests answered by the DUL's receiver (not pynetdicom)."""
        return sum(r.stored for r in self.receivers if r is not None)


@pytest.fixture
def serve() -> Iterator[Any]:
    """Start listeners (``serve(services, **DicomSettings)``), each recording the
    receiver it gives its associations; all are stopped afterwards."""
    servers = []

    def start(services: Services, **settings: Any) -> Served:
        port = free_port()
        server = start_dicom(services, DicomSettings(ae_title="PACS", host="127.0.0.1",
                                                     port=port, **settings))
        servers.append(server)
        served = Served("127.0.0.1", port, "PACS", services, server)
        factory = server.p_data_receiver

        def recording(assoc: Any, staging: Path | None) -> Any:
            receiver = factory(assoc, staging)
            served.receivers.append(receiver)
            return receiver

        server.p_data_receiver = recording
        return served

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


def _other_services(tmp_path: Path) -> Services:
    url = f"sqlite:///{tmp_path / 'other.db'}"
    upgrade(url)
    return build_services(StorageSettings(database_url=url,
                                          storage_url=f"file://{tmp_path / 'other'}"))


def _stored(served: Served, uid: str) -> tuple[bytes, str]:
    """The one stored object of ``uid`` and the digest the index recorded for it."""
    (data,) = scu.stored_objects(served.services, uid)
    with served.services.db.read() as s:
        digest = s.execute(select(Instance.sha256)
                           .where(Instance.sop_instance_uid == uid)).scalar_one()
    assert digest == hashlib.sha256(data).hexdigest()
    return data, digest


def _staging_empty(served: Served) -> bool:
    return scu.staging_files(served.services) == []


def _files(tmp_path: Path) -> list[Path]:
    tmp_path.mkdir(parents=True, exist_ok=True)
    paths = [scu.vendor_copy(name, tmp_path) for name in REAL_FILES]
    return paths + [write(ds, tmp_path / "generated")
                    for ds in make_study(StudySpec(series=1, instances=3))]


def test_fast_and_pynetdicom_paths_store_the_same_bytes(
        serve: Any, sqlite_services: Services, tmp_path: Path) -> None:
    fast = serve(sqlite_services)
    other = _other_services(tmp_path)
    try:
        slow = serve(other)
        # A handler watching received PDUs keeps pynetdicom's receive path.
        pdus: list[int] = []
        slow.server.bind(evt.EVT_PDU_RECV, lambda event: pdus.append(1))
        paths = _files(tmp_path / "in")
        assert scu.store_files(fast, paths) == [0x0000] * len(paths)
        assert scu.store_files(slow, paths) == [0x0000] * len(paths)
        assert (fast.fast_stores, slow.fast_stores) == (len(paths), 0)
        assert pdus, "the slow listener did not use pynetdicom's receive path"
        for path in paths:
            uid = str(scu.split_part10(path.read_bytes())[0].MediaStorageSOPInstanceUID)
            assert _stored(fast, uid) == _stored(slow, uid), path.name
        assert _staging_empty(fast) and _staging_empty(slow)
    finally:
        other.close()


_VARYING = {"id", "series_fk", "study_fk", "patient_fk", "object_key", "received_at",
            "created_at", "updated_at", "source_address", "calling_ae"}
"""Index columns that differ between two archives storing the same objects (keys, times,
the sender)."""


def _index_rows(served: Served, uid: str) -> list[dict[str, Any]]:
    """The instance's row and those of its series, study and patient, as indexed."""
    with served.services.db.read() as s:
        instance = s.execute(select(Instance).where(Instance.sop_instance_uid == uid)
                             ).scalar_one()
        series = s.get(Series, instance.series_fk)
        study = s.get(Study, series.study_fk)
        patient = s.get(Patient, study.patient_fk)
        return [{column.key: getattr(row, column.key) for column in type(row).__table__.c
                 if column.key not in _VARYING}
                for row in (instance, series, study, patient)]


@pytest.mark.parametrize("max_pdu", [16382, 4096])
def test_header_parsed_while_arriving_indexes_the_same(
        serve: Any, services: Services, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch, max_pdu: int) -> None:
    """A header parsed from the first fragments, while the pixel data still arrives,
    gives the archive the same objects and index rows (metadata JSON included) as
    pynetdicom's receive path, whose archive reads the stored file; storescu and
    pynetdicom senders, vendor files (those the parse declines too) and generated ones."""
    parsed: list[str] = []
    real_parse = store_receiver.parse_head

    def recording(data: bytes) -> Any:
        head = real_parse(data)
        if head is not None:
            parsed.append(str(head.dataset.SOPInstanceUID))
        return head

    monkeypatch.setattr(store_receiver, "parse_head", recording)
    fast = serve(services, max_pdu=max_pdu)  # SQLite and PostgreSQL index
    other = _other_services(tmp_path)
    try:
        slow = serve(other)
        slow.server.bind(evt.EVT_PDU_RECV, lambda event: None)  # pynetdicom's path
        paths = _files(tmp_path / "in")
        by_storescu = [write(ds, tmp_path / "storescu")
                       for ds in make_study(StudySpec(series=1, instances=3))]
        assert scu.store_files(fast, paths) == [0x0000] * len(paths)
        result = run("storescu", "+sd", "-aec", "PACS", fast.host, str(fast.port),
                     str(tmp_path / "storescu"))
        assert result.returncode == 0, result.stderr
        assert scu.store_files(slow, paths + by_storescu) == [0x0000] * (len(paths) + 3)
        assert (fast.fast_stores, slow.fast_stores) == (len(paths) + 3, 0)
        uids = [str(scu.split_part10(path.read_bytes())[0].MediaStorageSOPInstanceUID)
                for path in paths + by_storescu]
        # Every generated object and the plain vendor ones were parsed while arriving.
        assert set(uids[-6:]) <= set(parsed) and len(set(parsed)) > 6, parsed
        for uid in uids:
            assert _stored(fast, uid) == _stored(slow, uid), uid
            assert _index_rows(fast, uid) == _index_rows(slow, uid), uid
        assert _staging_empty(fast) and _staging_empty(slow)
    finally:
        other.close()


def test_many_fragments_with_a_4_kib_maximum_pdu(serve: Any, sqlite_services: Services,
                                                 tmp_path: Path) -> None:
    served = serve(sqlite_services, max_pdu=4096)
    paths = _files(tmp_path / "in")
    assert scu.store_files(served, paths) == [0x0000] * len(paths)
    datasets = make_study(StudySpec(series=1, instances=2))
    assert scu.store_datasets(served, datasets) == [0x0000] * 2
    assert served.fast_stores == len(paths) + 2
    for path in paths:
        meta, sent = scu.split_part10(path.read_bytes())
        data, _ = _stored(served, str(meta.MediaStorageSOPInstanceUID))
        assert scu.split_part10(data)[1] == sent, path.name
    assert _staging_empty(served)


def test_storescu(serve: Any, sqlite_services: Services, tmp_path: Path) -> None:
    served = serve(sqlite_services)
    study = make_study(StudySpec(series=2, instances=3))
    for ds in study:
        write(ds, tmp_path / "in")
    result = run("storescu", "+sd", "-aec", "PACS", served.host, str(served.port),
                 str(tmp_path / "in"))
    assert result.returncode == 0, result.stderr
    assert served.fast_stores == len(study)
    for ds in study:
        data, _ = _stored(served, ds.SOPInstanceUID)
        assert scu.read_bytes(data).PixelData == ds.PixelData


def test_a_refusal_comes_back_with_status_and_comment(
        serve: Any, sqlite_services: Services, tmp_path: Path) -> None:
    served = serve(sqlite_services)
    (ds,) = make_study(StudySpec(series=1, instances=1))
    body = scu.encode_explicit_le(ds)
    path = tmp_path / "lying.dcm"  # the command names another instance than the data set
    path.write_bytes(scu.part10(body, CTImageStorage, generate_uid(), ExplicitVRLittleEndian))
    with scu._chunked_send(), scu.association(
            served, [(CTImageStorage, [ExplicitVRLittleEndian])]) as assoc:
        rsp = assoc.send_c_store(path)
        again = assoc.send_c_store(write(ds, tmp_path / "good"))
    assert rsp.Status == 0xA900
    assert rsp.ErrorComment, "the refusal carries no Error Comment"
    assert again.Status == 0x0000, "the association did not go on after a refusal"
    assert served.fast_stores == 2
    assert served.services.archive.count()["instances"] == 1
    assert _staging_empty(served)


def test_store_over_tls(serve: Any, sqlite_services: Services, tmp_path: Path) -> None:
    cert, key = self_signed(tmp_path)
    served = serve(sqlite_services, tls_cert=cert, tls_key=key)
    client = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=str(cert))
    ae = AE(ae_title="TLSSCU")
    ae.acse_timeout = ae.network_timeout = ae.dimse_timeout = 10
    ae.add_requested_context(CTImageStorage, ExplicitVRLittleEndian)
    study = make_study(StudySpec(series=1, instances=3))
    assoc = ae.associate(served.host, served.port, ae_title="PACS",
                         tls_args=(client, "127.0.0.1"))
    assert assoc.is_established
    statuses = [assoc.send_c_store(ds).Status for ds in study]
    assoc.release()
    assert statuses == [0x0000] * 3
    assert served.fast_stores == 3
    for ds in study:
        assert scu.read_bytes(_stored(served, ds.SOPInstanceUID)[0]).PixelData == ds.PixelData


# -- a raw peer, to send what pynetdicom never sends ---------------------------------------

def _item(kind: int, body: bytes) -> bytes:
    return struct.pack(">BBH", kind, 0, len(body)) + body


def _associate(served: Served) -> socket.socket:
    """A bare TCP peer proposing CT Image Storage (context 1, Explicit VR LE)."""
    app = _item(0x10, b"1.2.840.10008.3.1.1.1")
    pc = _item(0x20, bytes([1, 0, 0, 0]) + _item(0x30, CTImageStorage.encode())
               + _item(0x40, ExplicitVRLittleEndian.encode()))
    user = _item(0x50, _item(0x51, struct.pack(">I", 16384))
                 + _item(0x52, b"1.2.826.0.1.3680043.9.3811.0"))
    body = (struct.pack(">HH", 1, 0) + b"PACS".ljust(16) + b"RAWPEER".ljust(16) + bytes(32)
            + app + pc + user)
    sock = socket.create_connection((served.host, served.port), timeout=10)
    sock.sendall(struct.pack(">BBI", 0x01, 0, len(body)) + body)
    kind, length = _read_pdu_header(sock)
    assert kind == 0x02, "association not accepted"
    _read_exactly(sock, length)
    return sock


def _read_exactly(sock: socket.socket, count: int) -> bytes:
    data = b""
    while len(data) < count:
        chunk = sock.recv(count - len(data))
        if not chunk:
            raise ConnectionError("closed")
        data += chunk
    return data


def _read_pdu_header(sock: socket.socket) -> tuple[int, int]:
    kind, _, length = struct.unpack(">BBI", _read_exactly(sock, 6))
    return kind, length


def _pdu(*pdvs: tuple[int, int, bytes]) -> bytes:
    body = b"".join(struct.pack(">IBB", len(d) + 2, cx, h) + d for cx, h, d in pdvs)
    return struct.pack(">BBI", 0x04, 0, len(body)) + body


def _store_command(ds: Dataset, message_id: int) -> bytes:
    rq = C_STORE()
    rq.MessageID = message_id
    rq.AffectedSOPClassUID = ds.SOPClassUID
    rq.AffectedSOPInstanceUID = ds.SOPInstanceUID
    rq.Priority = 0
    rq.DataSet = BytesIO(b"\0")
    message = C_STORE_RQ()
    message.primitive_to_message(rq)
    pdata = next(iter(message.encode_msg(1, 0)))  # the command set, in one fragment
    return bytes(pdata.presentation_data_value_list[0][1][1:])


def _response(sock: socket.socket) -> Dataset | None:
    """The command set of the next response, or ``None`` for an A-ABORT."""
    kind, length = _read_pdu_header(sock)
    body = _read_exactly(sock, length)
    if kind == 0x07:
        return None
    assert kind == 0x04, f"unexpected PDU type {kind:#x}"
    assert body[5] & 0x03 == 0x03, "expected a whole command set in one PDV"
    return decode(BytesIO(body[6:]), True, True)


def test_command_and_data_set_in_one_pdu(serve: Any, sqlite_services: Services) -> None:
    served = serve(sqlite_services)
    first, second = make_study(StudySpec(series=1, instances=2))
    with _associate(served) as sock:
        # One PDU: a whole message; then a PDU ending one message and starting the next.
        sock.sendall(_pdu((1, 0x03, _store_command(first, 1)),
                          (1, 0x02, scu.encode_explicit_le(first))))
        rsp = _response(sock)
        assert rsp is not None and (rsp.Status, rsp.MessageIDBeingRespondedTo) == (0, 1)
        data = scu.encode_explicit_le(second)
        half = len(data) // 2
        sock.sendall(_pdu((1, 0x03, _store_command(second, 2)), (1, 0x00, data[:half])))
        sock.sendall(_pdu((1, 0x02, data[half:])))
        rsp = _response(sock)
        assert rsp is not None and (rsp.Status, rsp.MessageIDBeingRespondedTo) == (0, 2)
        assert rsp.AffectedSOPInstanceUID == second.SOPInstanceUID
    assert served.fast_stores == 2
    for ds in (first, second):
        stored, _ = _stored(served, ds.SOPInstanceUID)
        assert scu.split_part10(stored)[1] == scu.encode_explicit_le(ds)


def _truncated(command: bytes) -> bytes:
    """The last element (Affected SOP Instance UID) running past the end."""
    return command[:-4] + b"\xff\xff"


def _bad_priority(command: bytes) -> bytes:
    """Priority 7 (PS3.7 Table 9.3-1 allows 0, 1, 2): pynetdicom's primitive refuses it."""
    at = command.index(struct.pack("<HHI", 0, 0x0700, 2))
    return command[:at + 8] + b"\x07\x00" + command[at + 10:]


@pytest.mark.parametrize("damage", [_truncated, _bad_priority])
def test_malformed_command_set_is_answered_as_pynetdicom_does(
        serve: Any, sqlite_services: Services, damage: Any) -> None:
    served = serve(sqlite_services)
    (ds,) = make_study(StudySpec(series=1, instances=1))
    with _associate(served) as sock:
        # Not a C-STORE-RQ the receiver can read: pynetdicom receives it as before.
        sock.sendall(_pdu((1, 0x03, damage(_store_command(ds, 1))),
                          (1, 0x02, scu.encode_explicit_le(ds))))
        sock.settimeout(10)
        rsp = _response(sock)
        assert rsp is None or rsp.Status >= 0xA000, "a malformed request was not refused"
    assert served.fast_stores == 0
    assert served.services.archive.count()["instances"] == 0
    assert scu.store_datasets(served, [ds]) == [0x0000], "the listener stopped serving"


def test_fragment_of_another_context_within_a_data_set_aborts(
        serve: Any, sqlite_services: Services) -> None:
    served = serve(sqlite_services)
    (ds,) = make_study(StudySpec(series=1, instances=1))
    data = scu.encode_explicit_le(ds)
    with _associate(served) as sock:
        sock.sendall(_pdu((1, 0x03, _store_command(ds, 1)), (1, 0x00, data[:100])))
        sock.sendall(_pdu((3, 0x02, data[100:])))  # PS3.8 9.3.5: not this message's
        sock.settimeout(10)
        assert _response(sock) is None, "expected an A-ABORT"
    assert served.services.archive.count()["instances"] == 0
    assert scu.store_datasets(served, [ds]) == [0x0000], "the listener stopped serving"
    assert _staging_empty(served)


def test_a_failing_staging_write_is_out_of_resources_and_the_association_goes_on(
        serve: Any, sqlite_services: Services, monkeypatch: pytest.MonkeyPatch) -> None:
    served = serve(sqlite_services)
    staging = str(Path(served.services.objects.root) / STAGING)
    real_write = os.write

    def full_disk(fd: int, data: Any) -> int:
        if os.readlink(f"/proc/self/fd/{fd}").startswith(staging):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real_write(fd, data)

    first, second = make_study(StudySpec(series=1, instances=2))
    with scu.association(served, [(CTImageStorage, [ExplicitVRLittleEndian])]) as assoc:
        monkeypatch.setattr(os, "write", full_disk)
        refused = assoc.send_c_store(first)
        monkeypatch.undo()
        stored = assoc.send_c_store(second)
    assert (refused.Status, stored.Status) == (0xA700, 0x0000)
    assert "No space left" in refused.ErrorComment
    assert served.fast_stores == 2
    assert served.services.archive.count()["instances"] == 1
    assert _staging_empty(served)


def test_the_response_goes_before_the_post_store_listeners(
        serve: Any, sqlite_services: Services) -> None:
    """The sender has its C-STORE-RSP while the listeners of that instance still run;
    they still run for every instance, in the order received, in that association."""
    served = serve(sqlite_services)
    answered = threading.Event()
    seen: list[tuple[str, bool]] = []

    def slow_listener(result: StoreResult, origin: Any) -> None:
        seen.append((result.sop_instance_uid, answered.wait(10)))
        answered.clear()

    sqlite_services.archive.add_listener(slow_listener)
    datasets = make_study(StudySpec(series=1, instances=3))
    statuses = []
    with scu.association(served, [(CTImageStorage, [ExplicitVRLittleEndian])]) as assoc:
        for ds in datasets:
            statuses.append(assoc.send_c_store(ds).Status)
            answered.set()  # only reached once the response is in: the listener waits
    assert statuses == [0x0000] * 3
    assert served.fast_stores == 3
    assert seen == [(str(ds.SOPInstanceUID), True) for ds in datasets]


def test_a_failing_listener_is_logged_and_changes_no_store(
        serve: Any, sqlite_services: Services, caplog: pytest.LogCaptureFixture) -> None:
    served = serve(sqlite_services)
    calls: list[str] = []

    def failing_listener(result: StoreResult, origin: Any) -> None:
        calls.append(result.sop_instance_uid)
        raise RuntimeError("the RIS is down")

    sqlite_services.archive.add_listener(failing_listener)
    datasets = make_study(StudySpec(series=1, instances=2))
    with caplog.at_level(logging.ERROR, logger="storage.archive"):
        assert scu.store_datasets(served, datasets) == [0x0000, 0x0000]
    assert served.fast_stores == 2
    assert calls == [str(ds.SOPInstanceUID) for ds in datasets]
    for ds in datasets:
        _stored(served, str(ds.SOPInstanceUID))
    assert caplog.text.count("post-store listener failed") == 2
    assert _staging_empty(served)


@pytest.mark.parametrize("spare_age", [600.0, 0.0])
def test_next_staging_file_made_after_the_response(
        serve: Any, sqlite_services: Services, monkeypatch: pytest.MonkeyPatch,
        spare_age: float) -> None:
    """After each response the receiver makes the next request's staging file; it is
    used (or, when older than the limit, replaced), and removed when the association
    ends. Either way every instance is stored whole."""
    monkeypatch.setattr("pacs.scp.store_receiver._SPARE_AGE", spare_age)
    served = serve(sqlite_services)
    datasets = make_study(StudySpec(series=1, instances=3))
    with scu.association(served, [(CTImageStorage, [ExplicitVRLittleEndian])]) as assoc:
        for ds in datasets:
            assert assoc.send_c_store(ds).Status == 0x0000
            # the response came before the spare was made: wait for it to appear
            assert _wait_for_staged_file(served), "no staging file made for the next request"
    assert served.fast_stores == 3
    for ds in datasets:
        _stored(served, str(ds.SOPInstanceUID))
    assert _staging_empty(served)


def _wait_for_staged_file(served: Served, timeout: float = 5.0) -> bool:
    staging = Path(served.services.objects.root) / STAGING
    deadline = time.monotonic() + timeout
    while not any(staging.iterdir()):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


def _spy_on_writeback(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, int, int]]:
    """Record each writeback the receiver starts: the file's path, offset and length."""
    started: list[tuple[str, int, int]] = []
    real = store_receiver.start_writeback

    def spy(fd: int, offset: int, length: int) -> None:
        started.append((os.readlink(f"/proc/self/fd/{fd}"), offset, length))
        real(fd, offset, length)

    monkeypatch.setattr(store_receiver, "start_writeback", spy)
    return started


def test_writeback_of_a_large_data_set_starts_while_it_arrives(
        serve: Any, sqlite_services: Services, monkeypatch: pytest.MonkeyPatch) -> None:
    """A staged file is handed to the kernel's writeback in 256 KiB steps while the rest
    arrives, in order and without gaps, and the object it becomes is stored whole."""
    started = _spy_on_writeback(monkeypatch)
    served = serve(sqlite_services)
    spec = StudySpec()
    large = [make_instance(spec, generate_uid(), 1, n, rows=512, cols=512) for n in (1, 2)]
    with scu.association(served, [(CTImageStorage, [ExplicitVRLittleEndian])]) as assoc:
        assert [assoc.send_c_store(ds).Status for ds in large] == [0x0000, 0x0000]
    assert served.fast_stores == 2
    staging = str(Path(served.services.objects.root) / STAGING)
    files = sorted({path for path, _, _ in started})
    assert len(files) == 2 and all(path.startswith(staging) for path in files)
    sizes = []
    for ds in large:
        data, _ = _stored(served, str(ds.SOPInstanceUID))
        assert scu.read_bytes(data).PixelData == ds.PixelData
        sizes.append(len(data))
    for path in files:
        ranges = [(offset, length) for name, offset, length in started if name == path]
        assert ranges[0][0] == 0
        assert all(length >= store_receiver._WRITEBACK for _, length in ranges)
        assert all(a + n == b for (a, n), (b, _) in zip(ranges, ranges[1:], strict=False))
        end = ranges[-1][0] + ranges[-1][1]
        assert min(sizes) - store_receiver._WRITEBACK < end <= max(sizes)
    assert _staging_empty(served)


def test_no_writeback_without_fsync(serve: Any, tmp_path: Path,
                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """With fsync off (``PACS_FSYNC=0``) nothing waits for the disk: no writeback is
    started, and the instance is stored all the same."""
    started = _spy_on_writeback(monkeypatch)
    url = f"sqlite:///{tmp_path / 'index.db'}"
    upgrade(url)
    services = build_services(StorageSettings(database_url=url, fsync=False,
                                              storage_url=f"file://{tmp_path / 'objects'}"))
    try:
        served = serve(services)
        ds = make_instance(StudySpec(), generate_uid(), 1, 1, rows=512, cols=512)
        assert scu.store_datasets(served, [ds]) == [0x0000]
        assert served.fast_stores == 1
        _stored(served, str(ds.SOPInstanceUID))
        assert started == []
    finally:
        services.close()
