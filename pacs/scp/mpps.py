"""Modality Performed Procedure Step SCP: N-CREATE and N-SET (PS3.4 F.7)."""

from __future__ import annotations

import logging

from pydicom.dataset import Dataset
from pynetdicom.events import Event

from pacs.origin import origin_of
from pacs.status import Service, failure
from ris.mpps import PerformedSteps
from storage.errors import PacsError

log = logging.getLogger(__name__)


def handle_n_create(event: Event, mpps: PerformedSteps) -> tuple[int | Dataset, Dataset | None]:
    """N-CREATE: a new step IN PROGRESS; the response echoes the attributes created."""
    uid = str(event.request.AffectedSOPInstanceUID or "")
    attributes = event.attribute_list
    try:
        mpps.create(uid, attributes, origin_of(event.assoc))
    except PacsError as exc:
        status = failure(exc, Service.N)
        log.warning("MPPS N-CREATE %s refused: %s 0x%04X", uid, exc.code, status.Status)
        return status, None
    return 0x0000, attributes


def handle_n_set(event: Event, mpps: PerformedSteps) -> tuple[int | Dataset, Dataset | None]:
    """N-SET: new values, and possibly the final status, of an existing step."""
    uid = str(event.request.RequestedSOPInstanceUID or "")
    modifications = event.modification_list
    try:
        mpps.update(uid, modifications, origin_of(event.assoc))
    except PacsError as exc:
        status = failure(exc, Service.N)
        log.warning("MPPS N-SET %s refused: %s 0x%04X", uid, exc.code, status.Status)
        return status, None
    return 0x0000, modifications
