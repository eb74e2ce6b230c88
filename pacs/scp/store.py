"""Storage SCP (PS3.4 B): the received bytes go to the archive untouched."""

from __future__ import annotations

import logging

from pydicom.dataset import Dataset
from pynetdicom.events import Event

from pacs.origin import origin_of
from pacs.reactor import received_digest
from pacs.scp import responses
from pacs.status import Service, failure
from storage.archive import Archive
from storage.errors import PacsError

log = logging.getLogger(__name__)


def handle_store(event: Event, archive: Archive) -> int | Dataset:
    """Archive one C-STORE; success only once the object is durable and indexed."""
    request = event.request
    responses.install(event.assoc)
    try:
        archive.store(event.dataset_path, origin_of(event.assoc),
                      sop_class_uid=request.AffectedSOPClassUID,
                      sop_instance_uid=request.AffectedSOPInstanceUID,
                      # pynetdicom removes the file afterwards, if it is still there
                      consume=True, sha256=received_digest(request))
    except PacsError as exc:
        status = failure(exc, Service.STORE)
        log.warning("C-STORE %s refused: %s 0x%04X", request.AffectedSOPInstanceUID,
                    exc.code, status.Status)
        return status
    return 0x0000
