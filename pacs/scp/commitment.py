"""Storage Commitment Push Model SCP (PS3.4 Annex J).

The N-ACTION (Action Type ID 1, "Request Storage Commitment") is answered at once with
success: the request is accepted, not yet answered (PS3.4 J.3.2). The check itself (index
and object storage, :class:`storage.commitment.StorageCommitment`) runs in a helper
thread, and its result goes back as an N-EVENT-REPORT (J.3.3): on the same association if
the requestor is still connected, otherwise on a new association that we open to the
requestor's registered address (``pacs ae add``), proposing the SCP role for ourselves
(SCP/SCU Role Selection, PS3.7 D.3.3.4; PS3.4 J.3.3.1).

pynetdicom's ``send_n_event_report`` pauses the association's reactor and waits until it
is idle, so the report sent from the helper thread always follows the N-ACTION response.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from pydicom.dataset import Dataset
from pynetdicom import AE, build_role
from pynetdicom.association import Association
from pynetdicom.events import Event
from pynetdicom.sop_class import StorageCommitmentPushModel  # type: ignore[attr-defined]

from pacs.origin import origin_of
from storage.aes import AeRegistry
from storage.commitment import (
    CommitmentResult,
    Failure,
    FailureReason,
    SopRef,
    StorageCommitment,
)
from storage.errors import PacsError
from storage.origin import Origin

log = logging.getLogger(__name__)

REQUEST_STORAGE_COMMITMENT = 1
"""Action Type ID of the N-ACTION (PS3.4 J.3.2.1)."""
ALL_COMMITTED = 1
"""Event Type ID "Storage Commitment Request Successful" (PS3.4 J.3.3.1)."""
SOME_FAILED = 2
"""Event Type ID "Storage Commitment Request Complete - Failures Exist" (PS3.4 J.3.3.1)."""
WELL_KNOWN_INSTANCE = "1.2.840.10008.1.20.1.1"
"""The Storage Commitment Push Model SOP Instance UID (PS3.4 J.3.5)."""

NO_SUCH_ACTION_TYPE = 0x0123
MISSING_ATTRIBUTE = 0x0120
INVALID_ATTRIBUTE_VALUE = 0x0106


def _refs(info: Dataset) -> list[SopRef]:
    return [SopRef(str(item.ReferencedSOPClassUID).strip(),
                   str(item.ReferencedSOPInstanceUID).strip())
            for item in info.ReferencedSOPSequence]


def event_information(result: CommitmentResult, ae_title: str) -> tuple[int, Dataset]:
    """The Event Type ID and Event Information of the report (PS3.4 Table J.3-2)."""
    ds = Dataset()
    ds.TransactionUID = result.transaction_uid
    ds.RetrieveAETitle = ae_title
    if result.committed:
        ds.ReferencedSOPSequence = []
        for ref in result.committed:
            item = Dataset()
            item.ReferencedSOPClassUID = ref.sop_class_uid
            item.ReferencedSOPInstanceUID = ref.sop_instance_uid
            ds.ReferencedSOPSequence.append(item)
    if result.failed:
        ds.FailedSOPSequence = []
        for failure in result.failed:
            item = Dataset()
            item.ReferencedSOPClassUID = failure.ref.sop_class_uid
            item.ReferencedSOPInstanceUID = failure.ref.sop_instance_uid
            item.FailureReason = int(failure.reason)
            ds.FailedSOPSequence.append(item)
    return (ALL_COMMITTED if result.all_committed else SOME_FAILED), ds


def handle_n_action(event: Event, commitment: StorageCommitment, aes: AeRegistry,
                    ae_title: str) -> tuple[int, Dataset | None]:
    """Accept a commitment request and answer it later with an N-EVENT-REPORT."""
    if event.action_type != REQUEST_STORAGE_COMMITMENT:
        return NO_SUCH_ACTION_TYPE, None
    try:
        info = event.action_information
        transaction_uid = str(info.TransactionUID).strip()
        refs = _refs(info)
    except AttributeError:
        log.warning("storage commitment refused: Transaction UID or Referenced SOP missing")
        return MISSING_ATTRIBUTE, None
    if not transaction_uid or not refs or any(
            not r.sop_class_uid or not r.sop_instance_uid for r in refs):
        return INVALID_ATTRIBUTE_VALUE, None
    assoc = event.assoc
    requestor = str(assoc.requestor.ae_title).strip()
    worker = threading.Thread(
        target=_answer, args=(assoc, requestor, transaction_uid, refs, origin_of(assoc),
                              commitment, aes, ae_title),
        name="storage-commitment", daemon=True)
    worker.start()
    return 0x0000, None


def _answer(assoc: Association, requestor: str, transaction_uid: str, refs: list[SopRef],
            origin: Origin, commitment: StorageCommitment, aes: AeRegistry,
            ae_title: str) -> None:
    try:
        result = commitment.commit(transaction_uid, refs, origin)
    except PacsError as exc:
        # Nothing can be reported as committed: every instance fails (PS3.4 J.3.3).
        log.warning("storage commitment %s failed: %s", transaction_uid, exc.code)
        result = CommitmentResult(transaction_uid, failed=[
            Failure(r, FailureReason.PROCESSING_FAILURE) for r in refs])
    event_type, info = event_information(result, ae_title)
    # A peer that is releasing does not answer; do not wait a full DIMSE timeout for it.
    assoc.dimse_timeout = min(assoc.dimse_timeout or 10, 10)
    if _connected(assoc) and _send(assoc, event_type, info):
        log.info("storage commitment %s reported on the same association", transaction_uid)
        return
    try:
        peer = aes.get(requestor)
    except PacsError:
        log.error("storage commitment %s: %s has gone and is not a known AE; the report "
                  "cannot be delivered", transaction_uid, requestor)
        return
    ae = AE(ae_title=ae_title)
    ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = 30
    ae.add_requested_context(StorageCommitmentPushModel)
    role = build_role(StorageCommitmentPushModel, scp_role=True)
    new = ae.associate(peer.host, peer.port, ae_title=requestor, ext_neg=[role])
    if not new.is_established:
        log.error("storage commitment %s: association to %s refused or failed",
                  transaction_uid, requestor)
        return
    try:
        if _send(new, event_type, info):
            log.info("storage commitment %s reported on a new association to %s",
                     transaction_uid, requestor)
    finally:
        new.release()


def _connected(assoc: Association) -> bool:
    """Whether the requestor is still there: established, and no abort or release request
    waiting (the reactor, which would notice them, is not running while we report)."""
    try:
        return bool(assoc.is_established and not assoc.acse.is_aborted()
                    and not assoc.acse.is_release_requested())
    except Exception:  # a half-closed association may lack its ACSE state
        return False


def _send(assoc: Association, event_type: int, info: Dataset) -> bool:
    try:
        status, _ = assoc.send_n_event_report(info, event_type, StorageCommitmentPushModel,
                                              WELL_KNOWN_INSTANCE)
    except (RuntimeError, ValueError) as exc:  # released meanwhile, or no context
        log.warning("N-EVENT-REPORT not sent: %s", exc)
        return False
    code: Any = getattr(status, "Status", None)
    if code is None:
        return False
    if code != 0x0000:
        log.warning("N-EVENT-REPORT answered with status 0x%04X", code)
    return True
