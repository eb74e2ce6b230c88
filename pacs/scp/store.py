"""Storage SCP (PS3.4 B): the received bytes go to the archive untouched."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

from pydicom.dataset import Dataset
from pynetdicom.association import Association
from pynetdicom.events import Event

from pacs.origin import origin_of
from pacs.scp import responses
from pacs.staging import received_digest
from pacs.status import Service, failure
from storage.archive import Archive
from storage.dicomio import Head
from storage.errors import PacsError

log = logging.getLogger(__name__)


def handle_store(event: Event, archive: Archive) -> int | Dataset:
    """Archive one C-STORE; success only once the object is durable and indexed.

    pynetdicom sends the response after this returns, so the post-store work (listeners,
    metrics) runs here, before it.
    """
    request = event.request
    responses.install(event.assoc)
    status, after = store_received(archive, event.assoc, event.dataset_path,
                                   str(request.AffectedSOPClassUID),
                                   str(request.AffectedSOPInstanceUID),
                                   received_digest(request))
    after()
    return status


def nothing_after() -> None:
    """The post-store work of a refused request: its metrics are already recorded."""


def store_received(archive: Archive, assoc: Association, path: str | Path,
                   sop_class_uid: str, sop_instance_uid: str, sha256: str | None,
                   head: Head | None = None) -> tuple[int | Dataset, Callable[[], None]]:
    """Archive the data set a C-STORE-RQ brought, written to ``path`` as a Part 10 file.

    Both receive paths call this: pynetdicom's (:func:`handle_store`) and the DUL's own
    (:mod:`pacs.scp.store_receiver`), so both store, audit and answer alike.

    Parameters
    ----------
    path
        The received file, given away (``consume``): it may be renamed into the object
        store, and the caller removes it afterwards if it is still there.
    sop_class_uid, sop_instance_uid
        The request's Affected SOP Class/Instance UIDs, checked against the data set.
    sha256
        The file's digest, when its writer computed it while it arrived.
    head
        The file's header, when its writer parsed it from the first bytes while the
        rest arrived (:func:`storage.dicomio.parse_head`).

    Returns
    -------
    tuple
        0x0000, or a failure status dataset (Status and Error Comment) from the one
        error table (:func:`pacs.status.failure`); and the work that need not precede
        the response (:meth:`~storage.archive.Archive.store_deferred`: post-store
        listeners, metrics), for the caller to run once, best right after answering.
    """
    try:
        _, after = archive.store_deferred(
            path, origin_of(assoc), sop_class_uid=sop_class_uid,
            sop_instance_uid=sop_instance_uid, consume=True, sha256=sha256, head=head)
    except PacsError as exc:
        status = failure(exc, Service.STORE)
        log.warning("C-STORE %s refused: %s 0x%04X", sop_instance_uid, exc.code,
                    status.Status)
        return status, nothing_after
    return 0x0000, after
