"""Query/Retrieve C-MOVE and C-GET SCPs (PS3.4 C.4.2, C.4.3).

Both locate the instances with the archive, then yield them one at a time, read from
object storage with their pixel data still encoded; pynetdicom sends them as C-STORE
sub-operations and counts completed, failed and warning sub-operations.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

from pydicom.uid import UID, ExplicitVRLittleEndian, ImplicitVRLittleEndian
from pynetdicom import evt
from pynetdicom.events import Event
from pynetdicom.presentation import build_context

from pacs.identifier import to_query
from pacs.origin import origin_of
from pacs.status import Service, dimse_status
from storage.aes import AeRegistry
from storage.archive import Archive, InstanceRef
from storage.errors import PacsError

log = logging.getLogger(__name__)

_UNCOMPRESSED = [ExplicitVRLittleEndian, ImplicitVRLittleEndian]


def _send(event: Event, archive: Archive, refs: list[InstanceRef]) -> Iterator[Any]:
    for ref in refs:
        if event.is_cancelled:
            yield 0xFE00, None
            return
        try:
            dataset = archive.read_dataset(ref)
        except PacsError as exc:
            log.warning("retrieve stopped: object of %s unreadable (%s)",
                        ref.sop_instance_uid, exc.code)
            yield dimse_status(exc, Service.RETRIEVE), None
            return
        yield 0xFF00, dataset


def move_contexts(refs: list[InstanceRef]) -> list[Any]:
    """Presentation contexts for the sub-association: each SOP class in its stored syntax.

    Uncompressed objects also offer the other uncompressed syntaxes, so a destination that
    accepts only Implicit VR Little Endian still gets them. At most 128 (PS3.8 9.3.2.2).
    """
    pairs = sorted({(r.sop_class_uid, r.transfer_syntax_uid) for r in refs})
    contexts = []
    for sop_class, ts in pairs[:128]:
        syntaxes = [UID(ts)] + [u for u in _UNCOMPRESSED if u != ts]
        contexts.append(build_context(sop_class, syntaxes if ts in _UNCOMPRESSED else [ts]))
    return contexts


def _name_originator(event: Event, originator: str) -> None:
    """Sub-operations carry the title of the AE that asked for the move (PS3.7 9.3.1.1).

    pynetdicom's C-MOVE SCP passes its own title as Move Originator; this association is
    ours alone, so its ``send_c_store`` is wrapped to name the real originator.
    """
    send = event.assoc.send_c_store

    def send_c_store(dataset: Any, msg_id: int = 1, priority: int = 2,
                     originator_aet: str | None = None, originator_id: int | None = None) -> Any:
        return send(dataset, msg_id=msg_id, priority=priority, originator_aet=originator,
                    originator_id=originator_id)

    event.assoc.send_c_store = send_c_store


def _refuse(exc: PacsError, verb: str) -> Iterator[Any]:
    """After the count, a failure status ends the operation with that status (C.4.2.3)."""
    log.warning("%s refused: %s", verb, exc.code)
    yield 1
    yield dimse_status(exc, Service.RETRIEVE), None


def handle_move(event: Event, archive: Archive, aes: AeRegistry) -> Iterator[Any]:
    destination = event.move_destination
    if isinstance(destination, bytes):
        destination = destination.decode("ascii", "replace")
    try:
        known = aes.get(str(destination))
    except PacsError:
        log.warning("C-MOVE to unknown destination refused")
        yield None, None  # pynetdicom answers 0xA801 Move Destination unknown
        return
    try:
        query = to_query(event.identifier, event.request.AffectedSOPClassUID)
        refs = archive.locate(query, origin_of(event.assoc), action="move",
                              destination=known.ae_title)
    except PacsError as exc:
        yield known.host, known.port
        yield from _refuse(exc, "C-MOVE")
        return
    originator = str(event.assoc.requestor.ae_title).strip()
    yield known.host, known.port, {
        "contexts": move_contexts(refs) if refs else None,
        "evt_handlers": [(evt.EVT_ESTABLISHED, _name_originator, [originator])],
    }
    yield len(refs)
    yield from _send(event, archive, refs)


def handle_get(event: Event, archive: Archive) -> Iterator[Any]:
    try:
        query = to_query(event.identifier, event.request.AffectedSOPClassUID)
        refs = archive.locate(query, origin_of(event.assoc), action="get")
    except PacsError as exc:
        yield from _refuse(exc, "C-GET")
        return
    yield len(refs)
    yield from _send(event, archive, refs)
