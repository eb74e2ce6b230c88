"""C-STORE requests received straight from P-DATA-TF PDUs, in the DUL thread.

pynetdicom turns every received PDU into a PDU object, a P-DATA primitive, a
state-machine event and a queue hop, then assembles the DIMSE message, hands it to the
association thread, builds a C-STORE primitive, an event and a response primitive, and
encodes the response with pydicom: a fifth of the CPU of receiving an instance. For the
one message that carries nearly all the bytes a PACS receives, :class:`StoreReceiver`
does instead what the standard asks and nothing more:

- the PDVs of a P-DATA-TF (PS3.8 9.3.5, Table 9-23) are cut out of the receive buffer;
- a complete command set (PS3.7 6.3, Implicit VR Little Endian) that is a C-STORE-RQ
  (PS3.7 9.3.1.1) on an accepted storage context opens a file in the object store's
  staging directory, starting with the File Meta Information pynetdicom writes for a
  chunked receive (so the stored file is byte for byte what pynetdicom would store);
- each data set fragment (PS3.8 E.2) is written from the receive buffer and hashed;
  the header (everything before the Pixel Data, which comes last) is parsed from the
  first fragments as soon as they hold it, while the pixel data is still arriving, and
  handed to the archive with the file (:func:`storage.dicomio.parse_head`);
- on the last one the archive stores the file (:func:`pacs.scp.store.store_received`, as
  the EVT_C_STORE handler does) and the C-STORE-RSP (PS3.7 9.3.1.2) goes back as
  encoded P-DATA-TF PDUs; the work that need not precede it (post-store listeners such
  as accession matching, metrics: :meth:`storage.archive.Archive.store_deferred`) runs
  right after it is sent, in this thread, before the next request is read.

Measured with storescu sending 300 CT/MR instances (sqlite and PostgreSQL index, fsync on),
per-thread CPU of the DUL and association threads outside the store itself: ~4.2 ms per
instance through pynetdicom, ~1.8 ms here (most of it the kernel's copies, SHA-256 and
creating the staging file).

Everything else keeps pynetdicom's path: other PDUs and messages, an association with
debugging handlers bound to PDU/DIMSE events, a message arriving while the association
thread serves another one, a command set pynetdicom would judge differently. Fragments
out of order within a message being received here are a protocol error (PS3.8 9.3.5:
one message's fragments are contiguous), answered by an A-ABORT as for an invalid PDU.
"""

from __future__ import annotations

import hashlib
import logging
import os
import struct
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

from pydicom.dataset import Dataset
from pynetdicom import (
    PYNETDICOM_IMPLEMENTATION_UID,
    PYNETDICOM_IMPLEMENTATION_VERSION,
    _config,
    evt,
)
from pynetdicom.association import Association
from pynetdicom.pdu_primitives import P_DATA
from pynetdicom.service_class import StorageServiceClass
from pynetdicom.sop_class import uid_to_service_class

from pacs.reactor import Received
from pacs.scp import responses
from pacs.scp.store import handle_store, nothing_after, store_received
from pacs.status import Service, failure
from storage.archive import Archive
from storage.dicomio import Head, parse_head
from storage.errors import StorageUnavailable
from storage.objects.filesystem import start_writeback

log = logging.getLogger(__name__)

_PDV = struct.Struct(">IBB")
_ELEMENT = struct.Struct("<HHI")
_US = struct.Struct("<H")

_C_STORE_RQ = 0x0001
_NO_DATA_SET = 0x0101
_HEAD_LIMIT = 65536
"""Bytes of a file kept in memory to parse its header from (a CT or MR header is 1-3 KiB;
a longer one is parsed from the file, as before)."""
_PIXEL_TAG = b"\xe0\x7f\x10\x00"
"""(7FE0,0010) in little endian: the header is tried once these bytes have arrived."""
_SPARE_AGE = 600.0
"""Oldest spare staging file used (seconds): well below the age at which the staging
directory's sweep removes files of receivers that died (storage.objects.filesystem)."""
_WRITEBACK = 256 * 1024
"""Bytes written to a staging file between two :func:`start_writeback` calls: one call
for a 525 KB CT slice in 256 KiB PDUs (every 128 KiB was slower: more, smaller writes)."""
_WATCHED = (evt.EVT_DATA_RECV, evt.EVT_PDU_RECV, evt.EVT_DIMSE_RECV, evt.EVT_DIMSE_SENT,
            evt.EVT_PDU_SENT)
"""Events pynetdicom raises on its receive path: with a handler bound, it stays in use."""


@dataclass(frozen=True)
class StoreRequest:
    """The parts of a C-STORE-RQ command set (PS3.7 Table 9.3-1) the store needs."""

    message_id: int
    sop_class_uid: str
    sop_instance_uid: str


Pdv = tuple[int, int, memoryview]
"""A PDV item: presentation context ID, message control header, fragment."""


def split_pdvs(body: memoryview) -> list[Pdv] | None:
    """The PDV items of a P-DATA-TF's body (PS3.8 Table 9-23), or ``None`` if malformed."""
    items: list[Pdv] = []
    offset, end = 0, len(body)
    while offset < end:
        if end - offset < _PDV.size:
            return None
        length, context_id, header = _PDV.unpack_from(body, offset)
        if length < 2 or offset + 4 + length > end:
            return None
        items.append((context_id, header, body[offset + 6:offset + 4 + length]))
        offset += 4 + length
    return items


def _uid(value: bytes | None) -> str | None:
    """A UI value as pynetdicom would accept it (1 to 64 characters), else ``None``."""
    if value is None:
        return None
    try:
        text = value.strip(b"\0 ").decode("ascii")
    except UnicodeDecodeError:
        return None
    return text if 0 < len(text) <= 64 else None


def _ae_title(value: bytes | None) -> bool:
    """Whether an AE value is one pynetdicom accepts (PS3.5 Table 6.2-1: 1 to 16
    characters of the default repertoire, no backslash or control characters)."""
    if value is None:
        return False
    text = value.strip(b" \0")
    return 0 < len(text) <= 16 and all(0x20 <= c < 0x7F and c != 0x5C for c in text)


def _us(value: bytes | None) -> int | None:
    return _US.unpack(value)[0] if value is not None and len(value) == 2 else None


def decode_store_request(command: bytes) -> StoreRequest | None:
    """The C-STORE-RQ in an encoded command set, or ``None`` if it is anything else.

    ``None`` also stands for a command set pynetdicom might judge differently (an
    element it cannot decode, a value its primitive would refuse, a C-STORE without a
    data set): pynetdicom then receives the message as usual.
    """
    elements: dict[int, bytes] = {}
    offset, end = 0, len(command)
    while offset < end:
        if end - offset < _ELEMENT.size:
            return None
        group, element, length = _ELEMENT.unpack_from(command, offset)
        offset += _ELEMENT.size
        if group != 0x0000 or length > end - offset:
            return None
        elements[element] = command[offset:offset + length]
        offset += length
    message_id = _us(elements.get(0x0110))
    sop_class_uid = _uid(elements.get(0x0002))
    sop_instance_uid = _uid(elements.get(0x1000))
    if (_us(elements.get(0x0100)) != _C_STORE_RQ or message_id is None
            or sop_class_uid is None or sop_instance_uid is None
            or _us(elements.get(0x0700)) not in (0, 1, 2)
            or _us(elements.get(0x0800)) in (None, _NO_DATA_SET)):
        return None
    if 0x1030 in elements or 0x1031 in elements:  # a C-MOVE sub-operation (PS3.7 9.3.1.1)
        if not _ae_title(elements.get(0x1030)) or _us(elements.get(0x1031)) is None:
            return None
    return StoreRequest(message_id, sop_class_uid, sop_instance_uid)


def _meta_element(element: int, vr: bytes, value: bytes) -> bytes:
    if vr == b"OB":
        return struct.pack("<HH2sHI", 0x0002, element, vr, 0, len(value)) + value
    return struct.pack("<HH2sH", 0x0002, element, vr, len(value)) + value


def _padded(value: str, pad: bytes) -> bytes:
    data = value.encode("ascii")
    return data + pad if len(data) % 2 else data


def file_meta(sop_class_uid: str, sop_instance_uid: str, transfer_syntax: str) -> bytes:
    """Preamble, prefix and File Meta Information (PS3.10 7.1) of a received data set.

    The same bytes pynetdicom writes for a chunked C-STORE receive (its
    ``create_file_meta`` and pydicom's ``write_file_meta_info``), so a file stored by
    either receive path is identical.
    """
    body = b"".join((
        _meta_element(0x0001, b"OB", b"\x00\x01"),
        _meta_element(0x0002, b"UI", _padded(sop_class_uid, b"\0")),
        _meta_element(0x0003, b"UI", _padded(sop_instance_uid, b"\0")),
        _meta_element(0x0010, b"UI", _padded(transfer_syntax, b"\0")),
        _meta_element(0x0012, b"UI", _padded(PYNETDICOM_IMPLEMENTATION_UID, b"\0")),
        _meta_element(0x0013, b"SH", _padded(PYNETDICOM_IMPLEMENTATION_VERSION, b" ")),
    ))
    return (b"\0" * 128 + b"DICM" + _meta_element(0x0000, b"UL", struct.pack("<I", len(body)))
            + body)


class _Incoming:
    """The staging file of the data set being received, hashed as it is written.

    A failing write (a full or failing disk) is remembered, not raised: the rest of the
    message is still read, so the association stays in step, and the request is then
    refused with Out of Resources instead of the association being aborted.
    """

    def __init__(self, directory: Path | None, request: StoreRequest, context_id: int,
                 spare: tuple[int, str, float] | None = None, *,
                 writeback: bool = False) -> None:
        if spare is not None:
            fd, name, _made = spare
        else:
            try:
                fd, name = tempfile.mkstemp(suffix=".dcm", dir=directory)
            except OSError:
                if directory is None:
                    raise
                # Object storage is failing: receive as usual; the archive's put will
                # then report it (0xA700) instead of this thread aborting the association.
                fd, name = tempfile.mkstemp(suffix=".dcm")
        self.fd: int | None = fd
        self.path = name
        self.request = request
        self.context_id = context_id
        self.error: OSError | None = None
        self._digest = hashlib.sha256()
        self.head: Head | None = None
        """The header, parsed from the first bytes once they held it."""
        self._first: bytearray | None = bytearray()
        self._writeback = writeback
        """Whether to start the file's writeback as it arrives (it is fsynced in place)."""
        self._written = 0
        self._flushed = 0
        """Bytes whose writeback was started."""

    def write(self, data: memoryview | bytes) -> None:
        self._digest.update(data)
        if self.fd is not None:
            view = memoryview(data)
            try:
                while view:
                    view = view[os.write(self.fd, view):]
                self._written += len(data)
                if self._writeback and self._written - self._flushed >= _WRITEBACK:
                    start_writeback(self.fd, self._flushed, self._written - self._flushed)
                    self._flushed = self._written
            except OSError as exc:
                self.error = exc
                self.close()
        if self._first is not None:
            self._gather(data)

    def _gather(self, data: memoryview | bytes) -> None:
        """Keep the first bytes, and parse the header once they may hold all of it."""
        first = cast(bytearray, self._first)
        # From 12 bytes back: a tag whose element header was cut off is tried again.
        seen = max(len(first) - 12, 0)
        first += data[:_HEAD_LIMIT - len(first)]
        if first.find(_PIXEL_TAG, seen) >= 0:
            try:
                self.head = parse_head(bytes(first))
            except Exception:  # never this thread's failure: the archive reads the file
                log.debug("header not parsed from the first bytes", exc_info=True)
                self.head = None
            if self.head is not None:
                self._first = None
                return
        if len(first) >= _HEAD_LIMIT:
            self._first = None  # too long a header: the archive reads the file

    def hexdigest(self) -> str:
        return self._digest.hexdigest()

    def close(self) -> None:
        if self.fd is not None:
            fd, self.fd = self.fd, None
            os.close(fd)

    def discard(self) -> None:
        self.close()
        try:
            os.unlink(self.path)
        except FileNotFoundError:
            pass  # adopted by the object store


class StoreReceiver:
    """Receives the C-STORE requests of one acceptor association in its DUL thread.

    :class:`pacs.reactor.EventDrivenDUL` asks :meth:`takes` before each P-DATA-TF it
    reads in Sta6 (where such a PDU leaves the state unchanged, PS3.8 Table 9-10 DT-2)
    and then hands it to :meth:`receive`.
    """

    def __init__(self, assoc: Association, archive: Archive,
                 staging_dir: Path | None) -> None:
        self._assoc = assoc
        self._archive = archive
        self._staging_dir = staging_dir
        self._command: list[tuple[int, int, bytes]] = []
        self._incoming: _Incoming | None = None
        self._spare: tuple[int, str, float] | None = None
        """An empty staging file made after a response, for the next request (with the
        time it was made)."""
        self._storage_contexts: dict[int, Any] = {}
        self._writeback = staging_dir is not None and bool(getattr(archive.objects, "fsync",
                                                                   False))
        """Whether staged files are fsynced in place before they are acknowledged, so that
        starting their writeback early shortens that wait."""
        self.stored = 0
        """Requests answered here (for tests and diagnostics)."""

    @classmethod
    def for_association(cls, assoc: Association, staging_dir: Path | None
                        ) -> StoreReceiver | None:
        """A receiver when ``assoc`` stores with our handler, else ``None``."""
        handler, args = cast(tuple[Any, Any], assoc.get_handlers(evt.EVT_C_STORE))
        if handler is not handle_store or not args or not _config.STORE_RECV_CHUNKED_DATASET:
            return None
        return cls(assoc, args[0], staging_dir)

    def takes(self) -> bool:
        """Whether the next P-DATA-TF is for :meth:`receive`: always within a message
        begun here; otherwise only while pynetdicom has nothing in progress."""
        if self._incoming is not None or self._command:
            return True
        assoc = self._assoc
        dimse = assoc.dimse
        handlers = assoc._handlers
        return (dimse.message is None and dimse.msg_queue.empty()
                and not getattr(assoc, "_pacs_serving", False) and not assoc._sent_release
                and not _config.UNRESTRICTED_STORAGE_SERVICE
                and not any(handlers.get(event) for event in _WATCHED))

    def receive(self, body: memoryview) -> Received:
        """Take the PDVs of one P-DATA-TF ``body`` (valid until the next read)."""
        pdvs = split_pdvs(body)
        if pdvs is None:
            if self._incoming is None and not self._command:
                return Received.DECLINED
            self._protocol_error("malformed P-DATA-TF PDU")
            return Received.TAKEN
        for index, (context_id, header, data) in enumerate(pdvs):
            incoming = self._incoming
            if incoming is not None:
                if header & 1 or context_id != incoming.context_id:
                    self._protocol_error("unexpected PDV in a data set")
                    return Received.TAKEN
                incoming.write(data)
                if header & 2:
                    self._incoming = None
                    self._finish(incoming)
                continue
            if not header & 1:  # a data set without a command: pynetdicom's to judge
                return self._deliver(pdvs[index:])
            self._command.append((context_id, header, bytes(data)))
            if not header & 2:
                continue
            request = decode_store_request(b"".join(item[2] for item in self._command))
            context = self._storage_context(context_id, request)
            if request is None or context is None:
                return self._deliver(pdvs[index + 1:])
            self._command = []
            spare, self._spare = self._spare, None
            if spare is not None and time.monotonic() - spare[2] > _SPARE_AGE:
                self._drop(spare)  # the staging sweep may remove it soon
                spare = None
            self._incoming = _Incoming(self._staging_dir, request, context_id, spare,
                                       writeback=self._writeback)
            self._incoming.write(file_meta(request.sop_class_uid, request.sop_instance_uid,
                                           str(context.transfer_syntax[0])))
        return Received.TAKEN

    def close(self) -> None:
        """Remove a partly received file (the association ended within a message) and
        the spare staging file."""
        if self._incoming is not None:
            self._incoming.discard()
            self._incoming = None
        if self._spare is not None:
            self._drop(self._spare)
            self._spare = None

    @staticmethod
    def _drop(spare: tuple[int, str, float]) -> None:
        fd, name, _made = spare
        os.close(fd)
        try:
            os.unlink(name)
        except FileNotFoundError:
            pass

    # -- internals ----------------------------------------------------------------------
    def _storage_context(self, context_id: int, request: StoreRequest | None) -> Any:
        """The accepted context if pynetdicom would serve ``request`` on it with the
        Storage Service Class as SCP (PS3.4 B.2), else ``None``."""
        if request is None:
            return None
        context = self._storage_contexts.get(context_id)
        if context is None:
            context = self._assoc._accepted_cx.get(context_id)
            if (context is None or not context.as_scp
                    or context.abstract_syntax in self._assoc.acceptor.accepted_common_extended
                    or uid_to_service_class(context.abstract_syntax) is not StorageServiceClass):
                return None
            self._storage_contexts[context_id] = context
        return context if request.sop_class_uid == context.abstract_syntax else None

    def _deliver(self, pdvs: list[Pdv]) -> Received:
        """Hand the command gathered so far and ``pdvs`` to pynetdicom's DIMSE provider,
        as its DT-2 action would (PS3.8 Table 9-10)."""
        primitive = P_DATA()
        primitive.presentation_data_value_list = [
            [context_id, bytes((header,)) + data] for context_id, header, data in self._command
        ] + [[context_id, bytes((header,)) + bytes(data)] for context_id, header, data in pdvs]
        self._command = []
        self._assoc.dimse.receive_primitive(primitive)
        return Received.DELIVERED

    def _protocol_error(self, reason: str) -> None:
        """Abort as for an invalid PDU (PS3.8 Table 9-10, Evt19: AA-8)."""
        log.error("C-STORE receive: %s, aborting the association", reason)
        self.close()
        self._command = []
        self._assoc.dul.event_queue.put("Evt19")

    def _finish(self, incoming: _Incoming) -> None:
        """Store the received file, answer, and remove what the archive did not adopt."""
        incoming.close()
        request = incoming.request
        try:
            status, comment, after = self._store(incoming)
        finally:
            incoming.discard()
        self.stored += 1
        try:
            if self._assoc.is_established:
                self._respond(incoming.context_id, request, status, comment)
        finally:
            # Answered first: the sender's next request is on its way while the listeners
            # run; this thread reads it only afterwards, so stores stay in order.
            self._after_store(after)
            self._make_spare()

    def _make_spare(self) -> None:
        """Create the next request's staging file now, while the sender prepares that
        request: creating a file (an inode, a journal entry) was ~3 % of the time between
        a request's last fragment and its response. Failing here changes nothing: the
        next request then creates its own, reporting a failing storage as usual."""
        if self._spare is not None or self._staging_dir is None:
            return
        try:
            fd, name = tempfile.mkstemp(suffix=".dcm", dir=self._staging_dir)
        except OSError:
            return
        self._spare = (fd, name, time.monotonic())

    @staticmethod
    def _after_store(after: Callable[[], None]) -> None:
        """Run a stored instance's post-store work; its failure never ends the association
        (the instance is stored and acknowledged already)."""
        try:
            after()
        except Exception as exc:
            log.error("post-store work failed: %s", getattr(exc, "code", type(exc).__name__))

    def _respond(self, context_id: int, request: StoreRequest, status: int,
                 comment: str | None) -> None:
        """Send the C-STORE-RSP, in order after what the association thread queued."""
        command = responses.store_response(request.sop_class_uid, request.message_id,
                                           request.sop_instance_uid, status, comment)
        wire = responses.command_pdus(context_id, command,
                                      self._assoc.dimse.maximum_pdu_size)
        responses.send_encoded(self._assoc.dul, wire)

    def _store(self, incoming: _Incoming) -> tuple[int, str | None, Callable[[], None]]:
        """The response status and Error Comment, as pynetdicom's Storage SCP makes them
        from the EVT_C_STORE handler (an unexpected exception is 0xC211), and the work
        to run once the response is sent."""
        request = incoming.request
        after: Callable[[], None] = nothing_after
        if incoming.error is not None:
            result: int | Dataset = failure(
                StorageUnavailable(f"cannot write the received data set: "
                                   f"{incoming.error.strerror}"), Service.STORE)
            log.warning("C-STORE %s refused: staging write failed 0x%04X",
                        request.sop_instance_uid, result.Status)
        else:
            try:
                result, after = store_received(self._archive, self._assoc, incoming.path,
                                               request.sop_class_uid,
                                               request.sop_instance_uid,
                                               incoming.hexdigest(), incoming.head)
            except Exception as exc:
                log.error("Exception in handler bound to 'evt.EVT_C_STORE'")
                log.exception(exc)
                return 0xC211, None, after
        if isinstance(result, Dataset):
            return int(result.Status), result.get("ErrorComment"), after
        return int(result), None, after
