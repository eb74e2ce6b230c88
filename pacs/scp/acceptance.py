"""Association acceptance: the transfer syntax the requestor prefers, and refusing
calling AE titles that are not known, when asked to.

pynetdicom accepts, in each proposed presentation context, the first transfer syntax of
the *acceptor's* list that the context proposes; its list starts with Implicit VR Little
Endian, so a modality proposing Explicit VR Little Endian first (storescu does, and most
modalities do) had to convert every data set to Implicit VR on the fly: the archive kept
the object without its VRs (those of private elements are then lost to every later
reader) and not as the modality sent it, and the conversion cost both sides CPU.
:func:`prefer_requested_syntaxes` puts the requestor's order first, as DCMTK's storescp
and dcm4chee do: a modality gets back what it sent, compressed or not.

With ``PACS_DICOM_ALLOW_UNKNOWN_AE=false`` an A-ASSOCIATE-RQ whose Calling AE Title is not
in the known-AE list (``pacs ae add``, ``/api/aes``) is answered with A-ASSOCIATE-RJ,
rejected-permanent, source service-user, reason "calling AE title not recognised"
(PS3.8 9.3.4, Table 9-21), and the refusal is audited. The default accepts every calling
AE, so a modality works out of the box; SPEC.md "unknown calling AEs may be refused".
"""

from __future__ import annotations

import copy
import logging
import time
from typing import Any

from pynetdicom.events import Event

from storage.aes import AeRegistry
from storage.audit import AuditLog
from storage.errors import NotFound, PacsError
from storage.origin import Origin

log = logging.getLogger(__name__)

REJECTED_PERMANENT, SERVICE_USER, CALLING_AE_NOT_RECOGNISED = 0x01, 0x01, 0x03


def prefer_requested_syntaxes(event: Event) -> None:
    """EVT_REQUESTED: order this association's supported transfer syntaxes by the
    requestor's proposals, before pynetdicom negotiates.

    For each abstract syntax, the syntaxes its proposed contexts list come first, in the
    order the requestor gave them (the first context naming a syntax sets its place), then
    the others as before. The association's list of supported contexts is its own, but
    the contexts in it are shared by every association (``EventDrivenRequestHandler``):
    a context whose order changes is replaced in the list by a copy, never edited.
    """
    assoc = event.assoc
    proposed: dict[str, list[str]] = {}
    for rq in assoc.requestor.primitive.presentation_context_definition_list:
        order = proposed.setdefault(rq.abstract_syntax, [])
        order.extend(ts for ts in rq.transfer_syntax if ts not in order)
    supported = assoc.acceptor.supported_contexts
    for index, cx in enumerate(supported):
        order = proposed.get(cx.abstract_syntax)
        if order:
            ours = cx._transfer_syntax
            first = [ts for ts in order if ts in ours]
            reordered = first + [ts for ts in ours if ts not in first]
            if reordered != ours:
                mine = copy.copy(cx)
                mine._transfer_syntax = reordered
                supported[index] = mine


def _wait_until_sent(assoc: Any, timeout: float = 2.0) -> None:
    """Wait for the DUL to put the A-ASSOCIATE-RJ on the wire (state Sta13, PS3.8 9.2).

    pynetdicom queues a reject sent from EVT_REQUESTED and, once the handler returns,
    closes the socket straight away: without this wait the peer would sometimes see the
    connection drop (an abort) instead of the rejection and its reason.
    """
    deadline = time.monotonic() + timeout
    while assoc.dul.state_machine.current_state != "Sta13" and time.monotonic() < deadline:
        time.sleep(0.001)


def handle_association_request(event: Event, aes: AeRegistry, audit: AuditLog,
                               allow_unknown: bool) -> None:
    """EVT_REQUESTED: reject the association if its calling AE is unknown and must be known."""
    if allow_unknown:
        return
    assoc = event.assoc
    primitive = assoc.requestor.primitive
    calling = str(primitive.calling_ae_title).strip()
    called = str(primitive.called_ae_title).strip()
    try:
        aes.get(calling)
        return
    except NotFound:
        reason = "unknown calling AE"
    except PacsError as exc:  # index down: refuse rather than let anyone in
        reason = exc.code
    log.warning("association refused: calling AE %s (%s)", calling, reason)
    audit.record(Origin(channel="dimse", calling_ae=calling, called_ae=called,
                        address=f"{assoc.requestor.address}:{assoc.requestor.port}"),
                 "associate", "refused", detail={"reason": reason})
    # Audited first: the peer may look for the record as soon as it reads the reject.
    assoc.acse.send_reject(REJECTED_PERMANENT, SERVICE_USER, CALLING_AE_NOT_RECOGNISED)
    _wait_until_sent(assoc)
