"""Modality Worklist C-FIND SCP (PS3.4 K): the modality asks for its scheduled steps."""

from __future__ import annotations

import logging
from collections.abc import Iterator

from pydicom.dataset import Dataset
from pynetdicom.events import Event

from pacs.origin import origin_of
from pacs.status import Service, dimse_status
from ris.worklist import Worklist, WorklistQuery
from storage.errors import PacsError

log = logging.getLogger(__name__)


def handle_mwl(event: Event, worklist: Worklist) -> Iterator[tuple[int, Dataset | None]]:
    """Translate the identifier, yield one pending response per scheduled step."""
    try:
        query = WorklistQuery.from_identifier(event.identifier)
        for match in worklist.find(query, origin_of(event.assoc)):
            if event.is_cancelled:
                yield 0xFE00, None
                return
            yield 0xFF00, match
    except PacsError as exc:
        log.warning("MWL C-FIND refused: %s", exc.code)
        yield dimse_status(exc, Service.FIND), None
