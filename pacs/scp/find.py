"""Query/Retrieve C-FIND SCP, Patient Root and Study Root (PS3.4 C.4.1)."""

from __future__ import annotations

import logging
from collections.abc import Iterator

from pydicom.dataset import Dataset
from pydicom.uid import UID
from pynetdicom.events import Event

from pacs.identifier import query_from_bytes, to_query
from pacs.origin import origin_of
from pacs.scp import responses
from pacs.status import Service, dimse_status
from storage.archive import Archive
from storage.errors import PacsError

log = logging.getLogger(__name__)
RETRIEVE_AE_TITLE = 0x00080054


def handle_find(event: Event, archive: Archive,
                ae_title: str) -> Iterator[tuple[int, Dataset | None]]:
    """Send one pending response per match, then let pynetdicom send the final status.

    A plain identifier is read from its bytes (:func:`query_from_bytes`), any other
    decoded by pydicom. Matches go straight to :class:`responses.PendingResponses`
    (already encoded for the context's transfer syntax); only a Deflated context, rare for
    queries, takes pynetdicom's path with a Dataset per match.
    """
    try:
        model = event.request.AffectedSOPClassUID
        syntax = UID(event.context.transfer_syntax)
        implicit_vr, little_endian = syntax.is_implicit_VR, syntax.is_little_endian
        encoded = event.request.Identifier
        query = None
        if encoded is not None and not syntax.is_deflated:
            query = query_from_bytes(encoded.getvalue(), implicit_vr, little_endian, model)
        if query is None:
            query = to_query(event.identifier, model)
        wants_aet = "RetrieveAETitle" in query.return_keys
        pending = None if syntax.is_deflated else responses.PendingResponses(event)
        matches = 0
        for match in archive.find(query, origin_of(event.assoc)):
            if event.is_cancelled:
                yield 0xFE00, None
                return
            if not event.assoc.is_established:
                return  # aborted: nobody to answer
            if wants_aet:
                match.set(RETRIEVE_AE_TITLE, "AE", ae_title)
            matches += 1
            if pending is None:
                yield 0xFF00, match.to_dataset()
            else:
                pending.send(match.encode(implicit_vr, little_endian))
        if matches >= archive.find_limit:
            # C-FIND has no status for "more matches than sent" (PS3.4 C.4.1.1.4).
            log.warning("C-FIND answer cut at %d matches (PACS_FIND_LIMIT)", matches)
    except PacsError as exc:
        log.warning("C-FIND refused: %s", exc.code)
        yield dimse_status(exc, Service.FIND), None
