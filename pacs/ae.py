"""The one DICOM Application Entity: its contexts, its handlers and its listener.

The listener sets TCP_NODELAY on every socket (otherwise each small DIMSE message waits
~40 ms for the peer's delayed ACK). It either binds the DICOM port itself, or, in a
worker process of ``pacs serve``, takes the connections that the dispatcher of
:mod:`pacs.handoff` hands it.
"""

from __future__ import annotations

import socket
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pydicom.config
from pynetdicom import (
    AE,
    ALL_TRANSFER_SYNTAXES,
    AllStoragePresentationContexts,
    _config,
    evt,
    transport,
)
from pynetdicom import sop_class as sc
from pynetdicom.transport import ThreadedAssociationServer

from pacs.handoff import CountedRequestHandler, HandoffServerMixin
from pacs.reactor import (
    EventDrivenRequestHandler,
    PDataReceiverFactory,
    guard_reactor_checkpoint,
)
from pacs.scp import responses
from pacs.scp.acceptance import handle_association_request, prefer_requested_syntaxes
from pacs.scp.commitment import handle_n_action
from pacs.scp.echo import handle_echo
from pacs.scp.find import handle_find
from pacs.scp.mpps import handle_n_create, handle_n_set
from pacs.scp.mwl import handle_mwl
from pacs.scp.retrieve import handle_get, handle_move
from pacs.scp.store import handle_store
from pacs.scp.store_receiver import StoreReceiver
from pacs.staging import receive_into_staging
from pacs.tls import server_context
from ris.services import Services
from ris.worklist import Worklist
from storage import metrics
from storage.archive import Archive

QR_FIND = [sc.PatientRootQueryRetrieveInformationModelFind,
           sc.StudyRootQueryRetrieveInformationModelFind]
QR_MOVE = [sc.PatientRootQueryRetrieveInformationModelMove,
           sc.StudyRootQueryRetrieveInformationModelMove]
QR_GET = [sc.PatientRootQueryRetrieveInformationModelGet,
          sc.StudyRootQueryRetrieveInformationModelGet]


@dataclass(frozen=True)
class DicomSettings:
    ae_title: str = "PACS"
    host: str = ""
    port: int = 11112
    max_pdu: int = 262_144
    max_associations: int = 64
    allow_unknown_ae: bool = True
    tls_cert: Path | None = None
    tls_key: Path | None = None
    tls_ca: Path | None = None


def configure_library() -> None:
    """Library globals, set once per process: no identifiers in logs, chunked receive,
    reactors that leave a send's responses to it, TCP_NODELAY on requested associations."""
    # Objects are stored as received; their values are not validated on the ingest path.
    pydicom.config.settings.reading_validation_mode = pydicom.config.IGNORE
    _config.LOG_REQUEST_IDENTIFIERS = False
    _config.LOG_RESPONSE_IDENTIFIERS = False
    _config.STORE_RECV_CHUNKED_DATASET = True
    # pynetdicom's standard handlers format every PDU and DIMSE message for debug logs,
    # even when nothing logs at that level: a measurable share of the CPU of a C-STORE.
    _config.LOG_HANDLER_LEVEL = "none"
    responses.send_encoded_pdus()
    guard_reactor_checkpoint()
    if not getattr(transport.AssociationSocket, "_pacs_nodelay", False):
        create = transport.AssociationSocket._create_socket

        def _create_socket(self: Any, address: Any) -> socket.socket:
            sock = create(self, address)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            return sock

        transport.AssociationSocket._create_socket = _create_socket  # type: ignore[method-assign]
        transport.AssociationSocket._pacs_nodelay = True  # type: ignore[attr-defined]


class PacsAssociationServer(ThreadedAssociationServer):
    """pynetdicom's threaded server with TCP_NODELAY.

    :func:`start_dicom` gives it :class:`pacs.reactor.EventDrivenRequestHandler`, so every
    association it accepts waits for its socket and queues instead of polling them.
    """

    staging_dir: Path | None = None
    """The object store's staging directory, given to every association (pacs.reactor)."""
    p_data_receiver: PDataReceiverFactory | None = None
    """Makes each association's P-DATA-TF receiver (pacs.reactor.PDataReceiver)."""

    def service_actions(self) -> None:
        """Nothing, where pynetdicom runs a full ``gc.collect()`` every 60th call.

        ``serve_forever`` calls this after each accepted connection and each idle poll.
        In a warmed-up worker (about 170,000 objects tracked) that collection took
        115-140 ms of CPU holding the GIL: 2 ms per association on average, and a stall
        of every association of the process each 60th connection. Python's own
        collector frees the cycles a finished association leaves, and
        :func:`pacs.bootstrap.freeze_heap` keeps its full collections small.
        """

    def get_request(self) -> tuple[socket.socket, tuple[str, int]]:
        sock, address = super().get_request()
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError:
            pass
        return sock, address


class HandoffAssociationServer(HandoffServerMixin, PacsAssociationServer):
    """The server of a ``pacs serve`` worker: connections come from the dispatcher
    (:mod:`pacs.handoff`), which has already set TCP_NODELAY on them."""


def build_ae(settings: DicomSettings) -> AE:
    ae = AE(ae_title=settings.ae_title)
    ae.maximum_associations = settings.max_associations
    ae.maximum_pdu_size = settings.max_pdu
    ae.network_timeout = 60
    ae.dimse_timeout = 60
    ae.acse_timeout = 30
    ae.add_supported_context(sc.Verification)
    for cx in AllStoragePresentationContexts:
        # scp_role: a C-GET requestor may take the Storage SCP role on these (PS3.7 D.3.3.4).
        ae.add_supported_context(cx.abstract_syntax, ALL_TRANSFER_SYNTAXES,
                                 scp_role=True, scu_role=False)
    for model in QR_FIND + QR_MOVE + QR_GET:
        ae.add_supported_context(model, ALL_TRANSFER_SYNTAXES)
    ae.add_supported_context(sc.ModalityWorklistInformationFind, ALL_TRANSFER_SYNTAXES)
    ae.add_supported_context(sc.ModalityPerformedProcedureStep, ALL_TRANSFER_SYNTAXES)
    ae.add_supported_context(sc.StorageCommitmentPushModel)
    return ae


def _find(event: Any, archive: Archive, ae_title: str, worklist: Worklist) -> Any:
    """pynetdicom raises one C-FIND event for every model: route MWL to its handler."""
    if event.request.AffectedSOPClassUID == sc.ModalityWorklistInformationFind:
        return handle_mwl(event, worklist)
    return handle_find(event, archive, ae_title)


def _count_association(event: Any, name: str) -> None:
    metrics.instruments().associations.labels(name).inc()


def _connection(event: Any, delta: int) -> None:
    metrics.instruments().associations_active.inc(delta)


ASSOCIATION_EVENTS = [
    (evt.EVT_ACCEPTED, _count_association, ["accepted"]),
    (evt.EVT_REJECTED, _count_association, ["rejected"]),
    (evt.EVT_RELEASED, _count_association, ["released"]),
    (evt.EVT_ABORTED, _count_association, ["aborted"]),
    (evt.EVT_CONN_OPEN, _connection, [1]),
    (evt.EVT_CONN_CLOSE, _connection, [-1]),
]
"""Association counters for ``/metrics`` (pynetdicom notification events)."""


def handlers(services: Services, ae_title: str, *, allow_unknown_ae: bool = True) -> list[Any]:
    archive = services.archive
    return [
        *ASSOCIATION_EVENTS,
        (evt.EVT_REQUESTED, prefer_requested_syntaxes),
        (evt.EVT_REQUESTED, handle_association_request,
         [services.aes, services.audit, allow_unknown_ae]),
        (evt.EVT_C_ECHO, handle_echo),
        (evt.EVT_C_STORE, handle_store, [archive]),
        (evt.EVT_C_FIND, _find, [archive, ae_title, services.worklist]),
        (evt.EVT_N_CREATE, handle_n_create, [services.mpps]),
        (evt.EVT_N_SET, handle_n_set, [services.mpps]),
        (evt.EVT_C_MOVE, handle_move, [archive, services.aes]),
        (evt.EVT_C_GET, handle_get, [archive]),
        (evt.EVT_N_ACTION, handle_n_action, [services.commitment, services.aes, ae_title]),
    ]


def start_dicom(services: Services, settings: DicomSettings,
                handoff: socket.socket | None = None) -> PacsAssociationServer:
    """Start the listener in a background thread; ``server.shutdown()`` stops it.

    With ``handoff`` (a worker's end of :func:`pacs.handoff.worker_channel`) it takes the
    connections a :class:`pacs.handoff.Dispatcher` hands it instead of binding the port.
    """
    configure_library()
    ae = build_ae(settings)
    server_class: type[PacsAssociationServer] = PacsAssociationServer
    request_handler: type[EventDrivenRequestHandler] = EventDrivenRequestHandler
    if handoff is not None:
        server_class = type("Server", (HandoffAssociationServer,), {"handoff": handoff})
        request_handler = CountedRequestHandler
    tls = (server_context(settings.tls_cert, settings.tls_key, settings.tls_ca)
           if settings.tls_cert is not None and settings.tls_key is not None else None)
    server = ae.make_server(
        (settings.host, settings.port),
        evt_handlers=handlers(services, settings.ae_title,
                              allow_unknown_ae=settings.allow_unknown_ae),
        server_class=server_class,
        ssl_context=tls,
        request_handler=request_handler,
    )
    # Received data sets are written where the object store can adopt them (a rename),
    # when it has such a place (the filesystem store; not S3).
    staging = getattr(services.objects, "staging_dir", None)
    server.staging_dir = staging() if staging is not None else None
    receive_into_staging()
    # C-STORE requests are received in each association's DUL thread (when its handler
    # is ours and no debugging handler watches PDUs): pacs.scp.store_receiver.
    server.p_data_receiver = StoreReceiver.for_association
    thread = threading.Thread(target=server.serve_forever, name="dicom-listener", daemon=True)
    thread.start()
    ae._servers.append(server)
    return server  # type: ignore[no-any-return]
