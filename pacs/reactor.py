"""Event-driven association loops for the acceptor: no 1 ms polling between DIMSE hops.

pynetdicom's two loops poll. The DUL reactor sleeps ``_run_loop_delay`` (1 ms) whenever
it has nothing to do, and the association reactor sleeps 1 ms every turn before looking
for a decoded DIMSE message. With a peer that waits for each C-STORE response before
sending the next request (storescu, most modalities), every request and every response
may wait up to a millisecond per hop, and the idle loops wake ~2,000 times a second per
association, taking the GIL from the threads that do the work.

Here the same two loops block instead:

- :class:`EventDrivenDUL` waits in :func:`select.select` on the peer's socket and on a
  wake-up socket pair, which :meth:`EventDrivenDUL.send_pdu` and
  :meth:`EventDrivenDUL.kill_dul` signal; the timeout is the ARTIM timer's remaining time
  (PS3.8 9.1.5), so ARTIM still fires, and at most :data:`MAX_WAIT` seconds.
- :class:`EventDrivenAssociation` waits on an :class:`threading.Event` that the DUL sets
  after every state-machine action (a decoded DIMSE message, an A-RELEASE or A-ABORT
  indication) and when it stops; it still wakes every :data:`MAX_WAIT` seconds to check
  the network idle timeout.

The state machine, the PDU codecs, the DIMSE decoder, TLS and the service classes are
pynetdicom's, unchanged: only the waiting differs, and one shortcut: a P-DATA-TF received
while the association is established may be given to a :class:`PDataReceiver` (the
C-STORE receiver of :mod:`pacs.scp.store_receiver`) instead of pynetdicom's decoders. The seam is
:class:`EventDrivenRequestHandler`, which our association server
(:class:`pacs.ae.PacsAssociationServer`) uses to create every acceptor association.
Associations we request (C-MOVE sub-operations) keep pynetdicom's loops.

Every association's reactor, ours and pynetdicom's, also gets
:func:`guard_reactor_checkpoint`, which closes pynetdicom's race between a reactor and a
``send_*()`` waiting for its responses.
"""

from __future__ import annotations

import enum
import logging
import queue
import select
import socket
import ssl
import struct
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol, cast

from pynetdicom import evt
from pynetdicom._globals import MODE_ACCEPTOR
from pynetdicom.association import Association
from pynetdicom.dimse import DIMSEServiceProvider
from pynetdicom.dul import DULServiceProvider
from pynetdicom.pdu import A_ABORT_RQ
from pynetdicom.pdu_primitives import P_DATA
from pynetdicom.transport import AssociationSocket, RequestHandler

LOGGER = logging.getLogger(__name__)

MAX_WAIT = 0.5
"""Longest block of either loop (seconds): bounds how late timeouts are noticed."""


class Received(enum.Enum):
    """What a :class:`PDataReceiver` did with a P-DATA-TF."""

    DECLINED = "declined"
    """Nothing: pynetdicom decodes the whole PDU."""
    TAKEN = "taken"
    """Handled completely."""
    DELIVERED = "delivered"
    """Some PDVs were handed to pynetdicom's DIMSE provider: wake the association."""


class PDataReceiver(Protocol):
    """Takes P-DATA-TF PDUs from the DUL thread in place of pynetdicom's decoders."""

    def takes(self) -> bool:
        """Whether the P-DATA-TF just read is for :meth:`receive`."""

    def receive(self, body: memoryview) -> Received:
        """Handle the PDU's body (a view valid until the next read)."""

    def close(self) -> None:
        """The association has ended: release what a message in progress holds."""


PDataReceiverFactory = Callable[[Any, "Path | None"], "PDataReceiver | None"]
"""Makes the receiver of an association (given the association and its staging
directory), or ``None`` to leave every PDU to pynetdicom."""

_PDU_HEADER = struct.Struct(">BBL")


class EventDrivenDUL(DULServiceProvider):
    """pynetdicom's DUL provider, blocking in ``select`` instead of sleeping 1 ms."""

    staging_dir: Path | None = None
    """Where a received C-STORE data set is written (:mod:`pacs.staging`)."""
    p_data_receiver: PDataReceiver | None = None
    """Takes P-DATA-TF PDUs received in Sta6, when set (:meth:`_read_pdu_data`)."""

    def __init__(self, assoc: Association) -> None:
        super().__init__(assoc)
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)
        self._write_lock = threading.Lock()
        self._unwritten = 0
        """P-DATA primitives queued for this thread and not yet written (under the lock)."""

    # -- wake-ups from other threads ------------------------------------------------------
    def _wake(self) -> None:
        try:
            self._wake_w.send(b"\0")
        except OSError:  # full (already signalled) or closed (the reactor has ended)
            pass

    def send_pdu(self, primitive: Any) -> None:
        """Queue a primitive for the peer (pynetdicom's behaviour) and wake the reactor."""
        if isinstance(primitive, P_DATA):
            with self._write_lock:
                self._unwritten += 1
        super().send_pdu(primitive)
        self._wake()

    def send_now(self, wire: bytes) -> bool:
        """Write encoded P-DATA-TF PDUs from the calling thread, if nothing queued
        before them is still unwritten and the association is established (Sta6, where
        a P-DATA request is DT-1: write the PDU, stay in Sta6; PS3.8 Table 9-10).

        Returns ``False`` (nothing written) otherwise: the caller queues them. Handing
        each batch of C-FIND responses to this thread cost a wake-up write, a ``select``
        and a state-machine turn here: about 0.5 ms of the 6 ms of server CPU of a
        65-match query. A queued P-DATA dropped by an abort is never counted as written,
        so nothing more is written from other threads once the association is ending.
        """
        with self._write_lock:
            if self._unwritten or self.state_machine.current_state != "Sta6":
                return False
            transport = cast("AssociationSocket | None", self.socket)
            if transport is None:
                return False
            transport.send(wire)  # on failure it queues Evt17 (connection closed)
        if not self.event_queue.empty():
            self._wake()
        return True

    @contextmanager
    def writing_queued(self) -> Iterator[None]:
        """Held by the DT-1 action while it writes a queued P-DATA primitive, so that
        :meth:`send_now` never writes between or before queued PDUs."""
        with self._write_lock:
            try:
                yield
            finally:
                self._unwritten -= 1

    def kill_dul(self) -> None:
        super().kill_dul()
        self._wake()

    # -- the loop -------------------------------------------------------------------------
    def _wait(self) -> None:
        """Block until the socket is readable, a wake-up arrives or a timer is due."""
        timeout = MAX_WAIT
        artim = self.artim_timer
        if artim.timeout is not None and artim._start_time is not None \
                and artim._end_time is None:
            timeout = max(0.0, min(timeout, artim.remaining))
        watched: list[Any] = [self._wake_r]
        transport = cast("AssociationSocket | None", self.socket)
        sock = transport.socket if transport is not None else None
        if sock is not None and transport is not None and transport._is_connected:
            if isinstance(sock, ssl.SSLSocket) and sock.pending():
                return  # decrypted bytes already buffered: select would not see them
            watched.append(sock)
        try:
            ready, _, _ = select.select(watched, [], [], timeout)
        except (OSError, ValueError):
            return  # the socket was closed meanwhile: the next turn notices
        if self._wake_r in ready:
            try:
                while self._wake_r.recv(4096):
                    pass
            except OSError:
                pass

    def run_reactor(self) -> None:
        """pynetdicom's DUL reactor loop, but blocking in :meth:`_wait` when idle.

        Each turn sends one queued primitive or reads one PDU, then runs one state-machine
        event, exactly as :meth:`DULServiceProvider.run_reactor` does.
        """
        self._idle_timer.start()
        self.assoc._dul_ready.set()
        try:
            self._loop()
        finally:
            if self.p_data_receiver is not None:
                self.p_data_receiver.close()
            self._wake_r.close()
            self._wake_w.close()
            _wake_association(self.assoc)

    def _loop(self) -> None:
        while not self._kill_thread:
            if self.artim_timer.expired:
                self.event_queue.put("Evt18")
            try:
                if self._process_recv_primitive():
                    pass
                elif self._is_transport_event():
                    self._idle_timer.restart()
            except Exception as exc:
                LOGGER.error("Exception in the DUL reactor, aborting association")
                LOGGER.exception(exc)
                # As pynetdicom does: bypass the state machine, send an A-ABORT, stop.
                abort_pdu = A_ABORT_RQ()
                abort_pdu.source = 0x02
                abort_pdu.reason_diagnostic = 0x00
                cast(AssociationSocket, self.socket).send(abort_pdu.encode())
                self.assoc.is_aborted = True
                self.assoc.is_established = False
                self.assoc._kill = True
                self._kill_thread = True
                return
            try:
                event = self.event_queue.get(block=False)
            except queue.Empty:
                self._wait()
                continue
            self.state_machine.do_action(event)
            _wake_association(self.assoc)


    def _read_pdu_data(self) -> None:
        """Read one PDU, as :meth:`DULServiceProvider._read_pdu_data` does, but let the
        :attr:`p_data_receiver` take a P-DATA-TF received in Sta6.

        The events are pynetdicom's for every outcome (PS3.8 Table 9-10): Evt17 when the
        connection closes within a PDU, Evt19 for an unknown or undecodable one, else the
        PDU's own event. A P-DATA-TF in Sta6 (Evt10) leads to DT-2 and back to Sta6, so
        one handled here leaves the state machine where pynetdicom would have.
        """
        receiver = self.p_data_receiver
        if receiver is None or self.state_machine.current_state != "Sta6":
            super()._read_pdu_data()
            return
        transport = cast(WholeReadSocket, self.socket)
        try:
            header = bytes(transport.recv(6))
            if len(header) < 6:
                self.event_queue.put("Evt17")
                return
            pdu_type, _, length = _PDU_HEADER.unpack(header)
            if pdu_type not in (0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07):
                LOGGER.error(f"Unknown PDU type received '0x{pdu_type:02X}'")
                self.event_queue.put("Evt19")
                return
            body = transport.recv_view(length)
        except (OSError, TimeoutError) as exc:
            LOGGER.error("Connection closed before the entire PDU was received")
            LOGGER.exception(exc)
            self.event_queue.put("Evt17")
            return
        if len(body) != length:
            LOGGER.error(f"The received PDU is shorter than expected ({len(body) + 6} of "
                         f"{6 + length} bytes received)")
            self.event_queue.put("Evt17")
            return
        if pdu_type == 0x04 and receiver.takes():
            outcome = receiver.receive(body)
            if outcome is Received.DELIVERED:
                _wake_association(self.assoc)
            if outcome is not Received.DECLINED:
                return
        try:
            pdu, event = self._decode_pdu(bytearray(header) + body)
        except Exception as exc:
            LOGGER.error("Unable to decode the received PDU data")
            LOGGER.exception(exc)
            self.event_queue.put("Evt19")
            return
        self.event_queue.put(event)
        self._recv_pdu.put(pdu)


def guard_reactor_checkpoint() -> None:
    """Keep an association's reactor from taking the responses a ``send_*()`` waits for.

    pynetdicom pauses the reactor for a ``send_*()`` by clearing ``_reactor_checkpoint``
    and waiting until ``_is_paused`` is true. The reactor sets ``_is_paused``, waits at
    the checkpoint, clears ``_is_paused`` and takes the next DIMSE message without
    blocking. A reactor that has just passed the checkpoint still shows ``_is_paused``:
    the ``send_*()`` goes on, and if the reactor resumes only after the peer answered, it
    takes the response and drops it as an "unexpected service message" (pynetdicom#875).
    A C-FIND then misses a match (it failed one test of a CI run), or a C-STORE
    sub-operation of a C-MOVE waits out the DIMSE timeout and fails.

    The reactor is the only caller that takes messages without blocking; here such a
    take gives nothing while the checkpoint is cleared, so the messages stay queued for
    the ``send_*()`` that cleared it. Patched once per process, for requested and
    accepted associations alike (:func:`pacs.ae.configure_library`).
    """
    if getattr(DIMSEServiceProvider, "_pacs_guarded", False):
        return
    get_msg = DIMSEServiceProvider.get_msg

    def guarded_get_msg(self: DIMSEServiceProvider, block: bool = False) -> Any:
        if not block and not self.assoc._reactor_checkpoint.is_set():
            return None, None
        return get_msg(self, block)

    DIMSEServiceProvider.get_msg = guarded_get_msg  # type: ignore[method-assign]
    DIMSEServiceProvider._pacs_guarded = True  # type: ignore[attr-defined]


def _wake_association(assoc: Association) -> None:
    wake = getattr(assoc, "_pacs_wake", None)
    if wake is not None and not wake.is_set():  # set() takes a lock and notifies
        wake.set()


class WholeReadSocket(AssociationSocket):
    """pynetdicom's association socket, reading a PDU into one buffer.

    pynetdicom's ``recv`` reads 4 KiB at a time and appends each piece to a bytearray:
    32 calls and copies for each 128 KiB P-DATA-TF PDU storescu sends. This reads
    straight into a buffer of the requested size, with the same result: all the bytes,
    or fewer if the peer closed the connection.
    """

    def recv(self, nr_bytes: int) -> bytearray:
        sock = cast(socket.socket, self.socket)
        buffer = bytearray(nr_bytes)
        view = memoryview(buffer)
        received = 0
        while received < nr_bytes:
            count = sock.recv_into(view[received:], nr_bytes - received)
            if not count:
                del view
                del buffer[received:]
                return buffer
            received += count
        return buffer

    def recv_view(self, nr_bytes: int) -> memoryview:
        """``nr_bytes`` read into a buffer kept for the next call (fewer if the peer
        closed the connection): the view is valid until then, and nothing is copied."""
        buffer = getattr(self, "_pacs_buffer", None)
        if buffer is None or len(buffer) < nr_bytes:
            buffer = bytearray(max(nr_bytes, 1 << 16))
            self._pacs_buffer = buffer
        view = memoryview(buffer)
        sock = cast(socket.socket, self.socket)
        received = 0
        while received < nr_bytes:
            count = sock.recv_into(view[received:nr_bytes], nr_bytes - received)
            if not count:
                break
            received += count
        return view[:received]


class EventDrivenAssociation(Association):
    """An acceptor association whose reactor waits for its DUL instead of polling."""

    def __init__(self, ae: Any, mode: str) -> None:
        super().__init__(ae, mode)
        self._pacs_wake = threading.Event()
        self._pacs_serving = False
        self.dul = EventDrivenDUL(self)
        # The timeout setters configure the DUL's ARTIM and idle timers: apply them again
        # to this DUL, not the one pynetdicom's constructor made.
        self.acse_timeout = self.acse_timeout
        self.network_timeout = self.network_timeout

    def kill(self) -> None:
        self._pacs_wake.set()
        super().kill()

    def _run_reactor(self) -> None:
        """pynetdicom's acceptor reactor (``Association._run_reactor``), event-driven.

        1. serve a completely decoded DIMSE message, if any;
        2. answer the peer's A-RELEASE; 3. stop on an A-ABORT; 4. stop when the DUL has
        stopped; 5. abort (or release) when the network idle timeout expired. Then wait
        for the DUL's next action, unless this turn found work (more may be queued).
        """
        self._is_paused = False
        busy = True
        while not self._kill:
            if not busy:
                self._pacs_wake.wait(MAX_WAIT)
            self._pacs_wake.clear()
            # Paused while a send_*() of ours waits for its own responses (C-GET/C-MOVE).
            self._is_paused = True
            self._reactor_checkpoint.wait()
            self._is_paused = False

            # Set before a message is taken, so the DUL never sees an empty queue while a
            # message is being served (it then leaves P-DATA to pynetdicom: in order).
            self._pacs_serving = True
            context_id, msg = self.dimse.get_msg(block=False)
            busy = msg is not None
            if msg:
                self._serve_request(msg, cast(int, context_id))
            self._pacs_serving = False

            if self.is_established and self.acse.is_release_requested():
                self.acse.send_release(is_response=True)
                LOGGER.info("Association Released")
                self.is_released = True
                self.is_established = False
                evt.trigger(self, evt.EVT_RELEASED, {})
                self.kill()
                return

            if self.acse.is_aborted():
                LOGGER.info("Association Aborted%s",
                            " (A-P-ABORT)" if self.acse.is_aborted("a-p-abort") else "")
                self.dul.receive_pdu(wait=False)  # so EVT_ACSE_RECV fires
                self.is_aborted = True
                self.is_established = False
                evt.trigger(self, evt.EVT_ABORTED, {})
                self.kill()
                return

            if not self.dul.is_alive():
                self.kill()
                return

            if self.dul.idle_timer_expired():
                LOGGER.error("Network timeout reached")
                if self.network_timeout_response == "A-RELEASE":
                    self._is_paused = True
                    self._reactor_checkpoint.wait()
                    self.release()
                    self._is_paused = False
                else:
                    self.abort()
                self.kill()
                return


class EventDrivenRequestHandler(RequestHandler):
    """Creates :class:`EventDrivenAssociation` acceptors (otherwise pynetdicom's handler)."""

    def _create_association(self) -> Association:
        """pynetdicom's ``RequestHandler._create_association``, with our association class.

        Kept step for step with pynetdicom 3.0's version: the socket, both service users,
        the supported contexts and the bound handlers. pynetdicom deep-copies the
        supported contexts for every association (every storage class × every transfer
        syntax: 180 contexts, a fifth of an association's CPU); here the association gets
        its own list of the shared contexts, which negotiation only reads, and
        :func:`pacs.scp.acceptance.prefer_requested_syntaxes` replaces the few it reorders
        with copies.
        """
        server = cast(Any, self.server)
        ae = self.ae
        assoc = EventDrivenAssociation(ae, MODE_ACCEPTOR)
        assoc._server = server
        dul = cast(EventDrivenDUL, assoc.dul)
        dul.staging_dir = getattr(server, "staging_dir", None)
        assoc.name = f"AcceptorThread@{datetime.now():%Y%m%d%H%M%S}"
        assoc.set_socket(WholeReadSocket(assoc, client_socket=self.request))
        assoc.acceptor.maximum_length = ae.maximum_pdu_size
        assoc.acceptor.ae_title = server.ae_title
        assoc.acceptor.address_info = self.local
        assoc.acceptor.implementation_class_uid = ae.implementation_class_uid
        assoc.acceptor.implementation_version_name = ae.implementation_version_name
        assoc.acceptor.supported_contexts = list(server.contexts)
        assoc.requestor.address_info = self.remote
        for event, handlers in server._handlers.items():
            if event.is_intervention and handlers:
                assoc.bind(event, *handlers)
            elif isinstance(event, evt.NotificationEvent):
                for handler in handlers:
                    assoc.bind(event, handler[0], handler[1])
        factory: PDataReceiverFactory | None = getattr(server, "p_data_receiver", None)
        if factory is not None:
            dul.p_data_receiver = factory(assoc, dul.staging_dir)
        return assoc
