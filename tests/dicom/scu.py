"""Helpers for the DICOM network tests: pynetdicom peers that talk to the listener.

Every helper goes through a real association with the listener (or, for the Storage SCP,
accepts real associations from it); nothing here calls the product's handlers directly.
"""

from __future__ import annotations

import contextlib
import io
import threading
import time
import warnings
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydicom import dcmread
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.filebase import DicomBytesIO
from pydicom.filereader import read_dataset, read_preamble
from pydicom.filewriter import write_dataset, write_file_meta_info
from pydicom.uid import (
    PYDICOM_IMPLEMENTATION_UID,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
)
from pynetdicom import (
    AE,
    ALL_TRANSFER_SYNTAXES,
    AllStoragePresentationContexts,
    _config,
    build_role,
    evt,
)
from pynetdicom import sop_class as sc
from pynetdicom.association import Association

from pacs.ae import configure_library
from storage.index.query import Level, Query
from storage.objects.filesystem import STAGING
from storage.origin import Origin
from tests.support.data import real_file
from tests.support.net import free_port

configure_library()  # TCP_NODELAY on our SCU sockets too

SCU_TITLE = "TESTSCU"
UNCOMPRESSED = [ExplicitVRLittleEndian, ImplicitVRLittleEndian]
_CHUNKED_LOCK = threading.Lock()

FIND_MODELS = {
    "patient": sc.PatientRootQueryRetrieveInformationModelFind,
    "study": sc.StudyRootQueryRetrieveInformationModelFind,
}
MOVE_MODELS = {
    "patient": sc.PatientRootQueryRetrieveInformationModelMove,
    "study": sc.StudyRootQueryRetrieveInformationModelMove,
}
GET_MODELS = {
    "patient": sc.PatientRootQueryRetrieveInformationModelGet,
    "study": sc.StudyRootQueryRetrieveInformationModelGet,
}
PENDING = (0xFF00, 0xFF01)


def _ae(title: str) -> AE:
    ae = AE(ae_title=title)
    ae.acse_timeout = 10
    ae.dimse_timeout = 30
    ae.network_timeout = 30
    return ae


def _status(rsp: Dataset) -> int:
    assert "Status" in rsp, "no response from the listener (timeout, abort or bad response)"
    return int(rsp.Status)


@contextlib.contextmanager
def association(listener: Any, contexts: Iterable[tuple[str, Sequence[str]]],
                *, ae_title: str = SCU_TITLE, roles: Sequence[Any] = (),
                evt_handlers: Sequence[Any] = ()) -> Iterator[Association]:
    """An established association with the listener proposing ``(abstract, [ts...])``."""
    ae = _ae(ae_title)
    for abstract, syntaxes in contexts:
        ae.add_requested_context(abstract, list(syntaxes))
    assoc = ae.associate(listener.host, listener.port, ae_title=listener.ae_title,
                         ext_neg=list(roles) or None, evt_handlers=list(evt_handlers) or None)
    assert assoc.is_established, "the listener did not accept the association"
    try:
        yield assoc
    finally:
        if assoc.is_established:
            assoc.release()
        ae.shutdown()


def echo(listener: Any) -> int:
    """C-ECHO status on a new association (fails if the listener does not answer)."""
    with association(listener, [(sc.Verification, UNCOMPRESSED)]) as assoc:
        return _status(assoc.send_c_echo())


# -- C-STORE -----------------------------------------------------------------------------

def store_datasets(listener: Any, datasets: Sequence[Dataset],
                   *, ae_title: str = SCU_TITLE) -> list[int]:
    """C-STORE each dataset (encoded by pynetdicom in its file-meta transfer syntax)."""
    pairs = sorted({(str(d.SOPClassUID), str(d.file_meta.TransferSyntaxUID)) for d in datasets})
    contexts = [(cls, [ts]) for cls, ts in pairs]
    with association(listener, contexts, ae_title=ae_title) as assoc:
        return [_status(assoc.send_c_store(d, msg_id=i + 1)) for i, d in enumerate(datasets)]


@contextlib.contextmanager
def _chunked_send() -> Iterator[None]:
    # With STORE_SEND_CHUNKED_DATASET pynetdicom sends a file's dataset bytes verbatim
    # and takes the command's Affected SOP Class/Instance UIDs from its file meta.
    with _CHUNKED_LOCK:
        old = _config.STORE_SEND_CHUNKED_DATASET
        _config.STORE_SEND_CHUNKED_DATASET = True
        try:
            yield
        finally:
            _config.STORE_SEND_CHUNKED_DATASET = old


def split_part10(data: bytes) -> tuple[Dataset, bytes]:
    """``(file meta, dataset bytes)`` of a Part 10 file's bytes."""
    fp = io.BytesIO(data)
    read_preamble(fp, False)
    meta = read_dataset(fp, is_implicit_VR=False, is_little_endian=True,
                        stop_when=lambda tag, vr, length: tag.group != 2)
    return meta, data[fp.tell():]


def part10(body: bytes, sop_class: str, sop_instance: str, transfer_syntax: str) -> bytes:
    """A Part 10 file: fresh file meta (as given) followed by ``body`` untouched."""
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = sop_class
    meta.MediaStorageSOPInstanceUID = sop_instance
    meta.TransferSyntaxUID = transfer_syntax
    meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
    buf = DicomBytesIO()
    buf.write(b"\0" * 128 + b"DICM")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # crafted, possibly malformed, UIDs
        write_file_meta_info(buf, meta, enforce_standard=True)
    return bytes(buf.getvalue()) + body


def encode_explicit_le(ds: Dataset) -> bytes:
    """``ds`` (without file meta) as Explicit VR Little Endian bytes."""
    buf = DicomBytesIO()
    buf.is_little_endian = True
    buf.is_implicit_VR = False
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        write_dataset(buf, ds)
    return bytes(buf.getvalue())


def vendor_copy(name: str, directory: Path) -> Path:
    """A real vendor file with its dataset bytes untouched and a file meta naming the
    dataset's own SOP Class/Instance UIDs (some vendor files' meta disagree with their
    dataset, and the C-STORE command must carry the dataset's UIDs)."""
    original = real_file(name)
    meta, body = split_part10(original.read_bytes())
    ds = dcmread(original, stop_before_pixels=True)
    path = directory / name
    path.write_bytes(part10(body, str(ds.SOPClassUID), str(ds.SOPInstanceUID),
                            str(meta.TransferSyntaxUID)))
    return path


def file_context(path: Path) -> tuple[str, str]:
    meta, _ = split_part10(path.read_bytes())
    return str(meta.MediaStorageSOPClassUID), str(meta.TransferSyntaxUID)


def store_files(listener: Any, paths: Sequence[Path],
                *, ae_title: str = SCU_TITLE) -> list[int]:
    """C-STORE each Part 10 file as its raw bytes, on its own SOP class and transfer syntax.

    The bytes after the file meta go on the wire untouched, so the listener receives them
    exactly as the vendor encoded them (or exactly as a test crafted them); the command's
    Affected SOP Class/Instance UIDs are the file meta's Media Storage SOP Class/Instance.
    """
    pairs = sorted({file_context(p) for p in paths})
    contexts = [(cls, [ts]) for cls, ts in pairs]
    with _chunked_send(), association(listener, contexts, ae_title=ae_title) as assoc:
        return [_status(assoc.send_c_store(p, msg_id=i + 1)) for i, p in enumerate(paths)]


# -- C-FIND / C-MOVE / C-GET -------------------------------------------------------------

@dataclass
class FindResult:
    statuses: list[int]
    matches: list[Dataset]

    @property
    def final(self) -> int:
        return self.statuses[-1]


@dataclass
class RetrieveResult:
    statuses: list[int]
    last: Dataset

    @property
    def final(self) -> int:
        return self.statuses[-1]

    def count(self, keyword: str) -> int | None:
        value = self.last.get(keyword)
        return None if value is None or value == "" else int(value)


@dataclass
class Received:
    sop_instance_uid: str
    sop_class_uid: str
    transfer_syntax: str
    dataset: Dataset
    move_originator: str = ""


def _received(event: Any) -> Received:
    ds = event.dataset
    ds.file_meta = event.file_meta
    originator = event.request.MoveOriginatorApplicationEntityTitle or ""
    return Received(str(ds.SOPInstanceUID), str(ds.SOPClassUID),
                    str(event.context.transfer_syntax), ds, str(originator).strip())


@dataclass
class GetResult(RetrieveResult):
    received: list[Received] = field(default_factory=list)


class Peer:
    """One SCU association with the listener, kept open across requests (re-opened if lost).

    Proposes C-FIND and C-MOVE on both models and, with ``storage`` given, C-GET with those
    Storage contexts in the SCP role.
    """

    def __init__(self, listener: Any, *, ae_title: str = SCU_TITLE,
                 storage: Sequence[tuple[str, Sequence[str]]] = ()) -> None:
        self.listener = listener
        self.ae_title = ae_title
        self.storage = list(storage)
        self._stack: contextlib.ExitStack | None = None
        self._assoc: Association | None = None
        self._received: list[Received] = []

    def _on_store(self, event: Any) -> int:
        self._received.append(_received(event))
        return 0x0000

    def assoc(self) -> Association:
        if self._assoc is not None and self._assoc.is_established:
            return self._assoc
        self.close()
        contexts = [(m, UNCOMPRESSED) for m in (*FIND_MODELS.values(), *MOVE_MODELS.values())]
        roles: list[Any] = []
        if self.storage:
            contexts += [(m, UNCOMPRESSED) for m in GET_MODELS.values()] + self.storage
            roles = [build_role(cls, scp_role=True) for cls, _ in self.storage]
        self._stack = contextlib.ExitStack()
        self._assoc = self._stack.enter_context(association(
            self.listener, contexts, ae_title=self.ae_title, roles=roles,
            evt_handlers=[(evt.EVT_C_STORE, self._on_store)]))
        return self._assoc

    def close(self) -> None:
        if self._stack is not None:
            self._stack.close()
        self._stack = None
        self._assoc = None

    def __enter__(self) -> Peer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def find(self, identifier: Dataset, model: str = "study") -> FindResult:
        statuses: list[int] = []
        matches: list[Dataset] = []
        for status, ident in self.assoc().send_c_find(identifier, FIND_MODELS[model]):
            code = _status(status)
            statuses.append(code)
            if code in PENDING:
                assert ident is not None, "pending C-FIND response without an identifier"
                matches.append(ident)
        assert statuses, "no C-FIND response"
        return FindResult(statuses, matches)

    def move(self, identifier: Dataset, destination: str,
             model: str = "study") -> RetrieveResult:
        statuses: list[int] = []
        last = Dataset()
        for status, _ in self.assoc().send_c_move(identifier, destination,
                                                  MOVE_MODELS[model]):
            statuses.append(_status(status))
            last = status
        assert statuses, "no C-MOVE response"
        return RetrieveResult(statuses, last)

    def get(self, identifier: Dataset, model: str = "study") -> GetResult:
        assert self.storage, "C-GET needs Storage contexts in the SCP role"
        assoc = self.assoc()
        self._received = []
        statuses: list[int] = []
        last = Dataset()
        for status, _ in assoc.send_c_get(identifier, GET_MODELS[model]):
            statuses.append(_status(status))
            last = status
        assert statuses, "no C-GET response"
        return GetResult(statuses, last, list(self._received))


def find(listener: Any, identifier: Dataset, model: str = "study",
         *, ae_title: str = SCU_TITLE) -> FindResult:
    with Peer(listener, ae_title=ae_title) as peer:
        return peer.find(identifier, model)


def move(listener: Any, identifier: Dataset, destination: str, model: str = "study",
         *, ae_title: str = SCU_TITLE) -> RetrieveResult:
    with Peer(listener, ae_title=ae_title) as peer:
        return peer.move(identifier, destination, model)


def get(listener: Any, identifier: Dataset, storage: Sequence[tuple[str, Sequence[str]]],
        model: str = "study", *, ae_title: str = SCU_TITLE) -> GetResult:
    with Peer(listener, ae_title=ae_title, storage=storage) as peer:
        return peer.get(identifier, model)


def query(level: str, **keys: Any) -> Dataset:
    """A C-FIND/C-MOVE/C-GET identifier: Query/Retrieve Level plus the given keys."""
    ds = Dataset()
    ds.QueryRetrieveLevel = level
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # wildcards and ranges in UI/DA values
        for keyword, value in keys.items():
            setattr(ds, keyword, value)
    return ds


# -- a Storage SCP for C-MOVE destinations -----------------------------------------------

class StorageSCP:
    """A pynetdicom Storage SCP on a free loopback port that remembers what it receives."""

    def __init__(self, ae_title: str = "DEST", sop_classes: Sequence[str] = ()) -> None:
        self.ae_title = ae_title
        self.host = "127.0.0.1"
        self.port = free_port()
        self.received: list[Received] = []
        self._lock = threading.Lock()
        ae = _ae(ae_title)
        # Only the classes a test needs: pynetdicom deep-copies the supported contexts for
        # every association, which takes ~0.2 s with all Storage classes x all syntaxes.
        classes = sop_classes or [cx.abstract_syntax for cx in AllStoragePresentationContexts]
        for cls in classes:
            ae.add_supported_context(cls, ALL_TRANSFER_SYNTAXES)
        ae.add_supported_context(sc.Verification)
        self._server = ae.start_server((self.host, self.port), block=False,
                                       evt_handlers=[(evt.EVT_C_STORE, self._on_store)])

    def _on_store(self, event: Any) -> int:
        item = _received(event)
        with self._lock:
            self.received.append(item)
        return 0x0000

    def stop(self) -> None:
        self._server.shutdown()

    def uids(self) -> list[str]:
        with self._lock:
            return [r.sop_instance_uid for r in self.received]


@contextlib.contextmanager
def storage_scp(ae_title: str = "DEST",
                sop_classes: Sequence[str] = ()) -> Iterator[StorageSCP]:
    scp = StorageSCP(ae_title, sop_classes)
    try:
        yield scp
    finally:
        scp.stop()


# -- reading what the archive holds -----------------------------------------------------

ARCHIVE_READER = Origin(channel="cli", username="tests")


def stored_objects(services: Any, sop_instance_uid: str) -> list[bytes]:
    """The archived bytes (Part 10) of every current object with this SOP Instance UID."""
    refs = services.archive.locate(Query(Level.IMAGE, {"SOPInstanceUID": sop_instance_uid}),
                                   ARCHIVE_READER)
    out = []
    for ref in refs:
        with services.archive.open(ref) as fh:
            out.append(fh.read())
    return out


def read_bytes(data: bytes) -> Dataset:
    return dcmread(io.BytesIO(data))


def staging_files(services: Any, timeout: float = 5.0) -> list[Path]:
    """Files left in the object store's staging directory once the listener's side of
    the associations has ended (waited for up to ``timeout`` s: the peer's release
    returns before the listener's DUL thread has removed its spare staging file)."""
    staging = Path(services.objects.root) / STAGING
    deadline = time.monotonic() + timeout
    while (left := sorted(staging.iterdir())) and time.monotonic() < deadline:
        time.sleep(0.02)
    return left
