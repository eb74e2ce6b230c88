"""Cheaper DIMSE responses on the hot paths: pending C-FIND, successful C-STORE and C-ECHO.

pynetdicom builds and encodes every response command set with pydicom, twice (once to
learn its group length): about 0.7 ms of CPU per response, a sizeable share of a C-STORE
and half the CPU of a C-FIND with many matches.

- A successful C-STORE-RSP (PS3.7 9.3.1.2), a pending or final Success C-FIND-RSP
  (PS3.7 9.3.2.2) and a successful C-ECHO-RSP (PS3.7 9.3.5.2; a quarter of the CPU of
  a C-ECHO association went to encoding it) are a few fixed elements, encoded here
  directly in Implicit VR Little Endian as PS3.7 6.3.1 requires for command sets.
- The C-FIND handler hands each match's identifier, already encoded by
  :meth:`storage.index.match.Match.encode`, to :class:`PendingResponses`, which sends
  it with the pending command set; pydicom never re-encodes it and pynetdicom's
  per-response loop (status checks, primitive, encoder hook) is not run per match.
- Pending C-FIND responses are written to the socket several at a time
  (:class:`_Outbox`), each still in P-DATA-TF PDUs of its own; the first one at once.
- These encoded responses are written by the thread that makes them when nothing sent
  before them is still queued (:func:`send_encoded`), not handed to the DUL thread.

The P-DATA fragments are made as pynetdicom makes them (PS3.8 E.2), except that a
message's command and identifier travel in one P-DATA-TF when they fit; every other
response goes through pynetdicom unchanged.
"""

from __future__ import annotations

import struct
import time
from contextlib import nullcontext
from typing import Any

from pynetdicom import fsm
from pynetdicom.dimse_messages import DIMSEMessage
from pynetdicom.dimse_primitives import C_ECHO, C_FIND, C_STORE
from pynetdicom.pdu import P_DATA_TF
from pynetdicom.pdu_primitives import P_DATA

_PENDING = (0xFF00, 0xFF01)
# Bytes of pending responses written to the socket at once when the peer sets no
# maximum PDU length, or a small one.
_BATCH_BYTES = 1 << 16
# Longest a pending response waits for others to share its socket write. Short, so the
# peer decodes the first matches while the rest are still being found: findscu spends
# about 0.1 ms per response, more than we do (~0.03 ms), and at 1 ms it sat idle between
# batches; at 0.2 ms a 65-match answer takes 5-9 writes.
_MAX_WAIT = 0.0002


def _element(group_element: int, value: bytes) -> bytes:
    return struct.pack("<HHI", group_element >> 16, group_element & 0xFFFF, len(value)) + value


def _uid(value: str) -> bytes:
    data = value.encode("ascii")
    return data + b"\0" if len(data) % 2 else data


def _text(value: str) -> bytes:
    """An LO value (PS3.5 6.2): the default character repertoire, space-padded to even."""
    data = value.encode("ascii", "replace")
    return data + b" " if len(data) % 2 else data


def _command(sop_class_uid: str, field: int, message_id: int, data_set_type: int,
             status: int, sop_instance_uid: str | None = None,
             error_comment: str | None = None) -> bytes:
    """A response command set of fixed elements (PS3.7 9.3), Implicit VR Little Endian,
    in ascending tag order (PS3.5 7.1)."""
    elements = [
        _element(0x00000002, _uid(sop_class_uid)),
        _element(0x00000100, struct.pack("<H", field)),
        _element(0x00000120, struct.pack("<H", message_id)),
        _element(0x00000800, struct.pack("<H", data_set_type)),
        _element(0x00000900, struct.pack("<H", status)),
    ]
    if error_comment is not None:
        elements.append(_element(0x00000902, _text(error_comment)))
    if sop_instance_uid is not None:
        elements.append(_element(0x00001000, _uid(sop_instance_uid)))
    body = b"".join(elements)
    return _element(0x00000000, struct.pack("<I", len(body))) + body


def store_success(sop_class_uid: str, message_id: int, sop_instance_uid: str) -> bytes:
    """The command set of a C-STORE-RSP with Status 0x0000 (PS3.7 Table 9.3-2)."""
    return _command(sop_class_uid, 0x8001, message_id, 0x0101, 0x0000, sop_instance_uid)


def store_response(sop_class_uid: str, message_id: int, sop_instance_uid: str,
                   status: int, error_comment: str | None = None) -> bytes:
    """The command set of any C-STORE-RSP (PS3.7 Table 9.3-2): a failure may carry an
    Error Comment (PS3.7 C.4.2), as pynetdicom sends it."""
    return _command(sop_class_uid, 0x8001, message_id, 0x0101, status, sop_instance_uid,
                    error_comment)


def echo_success(sop_class_uid: str, message_id: int) -> bytes:
    """The command set of a C-ECHO-RSP with Status 0x0000 (PS3.7 Table 9.3-13)."""
    return _command(sop_class_uid, 0x8030, message_id, 0x0101, 0x0000)


def command_pdus(context_id: int, command: bytes, max_pdu: int) -> bytes:
    """A message without a data set, as encoded P-DATA-TF PDUs for the peer's maximum
    PDU length (``max_pdu``, 0 for none)."""
    return _pdus(context_id, command, None, max_pdu)


def find_response(sop_class_uid: str, message_id: int, status: int) -> bytes:
    """The command set of a pending (with identifier) or final Success C-FIND-RSP
    (PS3.7 Table 9.3-4)."""
    return _command(sop_class_uid, 0x8020, message_id,
                    0x0001 if status in _PENDING else 0x0101, status)


def _pdus(context_id: int, command: bytes, identifier: bytes | None, max_pdu: int) -> bytes:
    """One DIMSE message as encoded P-DATA-TF PDUs (PS3.8 9.3.5, E.2).

    Command and identifier share a PDU when both fit in the peer's maximum length (two
    PDV items); otherwise each is fragmented as pynetdicom fragments it.
    """
    if identifier is not None and (max_pdu == 0 or len(command) + len(identifier) + 12
                                   <= max_pdu):
        return _pdu(((context_id, 0x03, command), (context_id, 0x02, identifier)))
    out = [_pdu(((context_id, header, fragment),)) for header, fragment in
           _fragments(command, max_pdu, 0x01, 0x03)]
    if identifier is not None:
        out += [_pdu(((context_id, header, fragment),)) for header, fragment in
                _fragments(identifier, max_pdu, 0x00, 0x02)]
    return b"".join(out)


def _fragments(data: bytes, max_pdu: int, middle: int, last: int) -> list[tuple[int, bytes]]:
    pieces = list(DIMSEMessage._generate_pdv_fragments(data, max_pdu))
    return [(last if n == len(pieces) - 1 else middle, piece) for n, piece in enumerate(pieces)]


def _pdu(items: tuple[tuple[int, int, bytes], ...]) -> bytes:
    """A P-DATA-TF PDU: type 04H, its length, then PDV items of length, presentation
    context ID, message control header and fragment (PS3.8 Tables 9-22, 9-23)."""
    body = b"".join(struct.pack(">IBB", len(data) + 2, context_id, header) + data
                    for context_id, header, data in items)
    return struct.pack(">BBI", 0x04, 0x00, len(body)) + body


class EncodedPDUs(P_DATA):
    """P-DATA-TF PDUs already encoded, written to the socket in one go by the DUL.

    Each PDU holds PDVs of one message only, as it would have if sent alone: many
    implementations do not expect two messages in one PDU (dcmtk 3.6.7 ``findscu``
    crashes on a pending response whose PDU also starts the next one), so batching is
    done at the socket write, not in the PDU.
    """

    def __init__(self, wire: bytes) -> None:
        super().__init__()
        self.wire = wire


def _send_p_data(dul: Any) -> str:
    """pynetdicom's DT-1 action (send a P-DATA-TF, PS3.8 Table 9-10), writing
    :class:`EncodedPDUs` as they are (under the DUL's write lock when it has one:
    :meth:`pacs.reactor.EventDrivenDUL.writing_queued`)."""
    primitive = dul.to_provider_queue.get(False)
    writing = getattr(dul, "writing_queued", None)
    with writing() if writing is not None else nullcontext():
        if isinstance(primitive, EncodedPDUs):
            if dul.socket is not None:  # as DULServiceProvider._send: nothing once closed
                dul.socket.send(primitive.wire)
        else:
            dul._send(P_DATA_TF(primitive))
    return "Sta6"


def send_encoded(dul: Any, wire: bytes) -> None:
    """Send encoded P-DATA-TF PDUs: written at once by the calling thread when the DUL
    allows it (:meth:`pacs.reactor.EventDrivenDUL.send_now`), else queued for the DUL
    thread, in order after what is queued already (PS3.8 9.3.5)."""
    send_now = getattr(dul, "send_now", None)
    if send_now is None or not send_now(wire):
        dul.send_pdu(EncodedPDUs(wire))


def send_encoded_pdus() -> None:
    """Make the DUL state machine write :class:`EncodedPDUs` without re-encoding them.

    The ``DT-1`` entry of pynetdicom's action table is replaced once per process; every
    other primitive is sent exactly as pynetdicom sends it.
    """
    description, action, state = fsm.ACTIONS["DT-1"]
    if action is not _send_p_data:
        fsm.ACTIONS["DT-1"] = (description, _send_p_data, state)


class _Outbox:
    """Pending C-FIND responses of one association waiting to share a socket write.

    Each pending response went through pynetdicom's DUL thread on its own: a queue hop,
    a state-machine action, a generic PDU encoder and a ``send`` call, more CPU than
    finding and encoding the match, and all of it contending for the GIL with the
    thread that produces the matches. Here the responses' PDUs are encoded at once and
    handed to the DUL in batches of up to the peer's maximum PDU length (at least
    :data:`_BATCH_BYTES`), which writes each batch with one ``send``. Anything else sent
    on the association first flushes what is waiting, so the order of messages never
    changes (PS3.8 9.3.5); a final response goes out with the last batch.
    """

    def __init__(self, dul: Any) -> None:
        self._dul = dul
        self._wire: list[bytes] = []
        self._size = 0
        self._since = 0.0
        self._command_key: tuple[str, int, int] | None = None
        self._command = b""

    def pending_command(self, sop_class_uid: str, message_id: int, status: int) -> bytes:
        """The pending response command set, the same for every match: encoded once."""
        key = (sop_class_uid, message_id, status)
        if key != self._command_key:
            self._command_key = key
            self._command = find_response(sop_class_uid, message_id, status)
        return self._command

    def add(self, wire: bytes, max_pdu: int) -> None:
        """Queue one message's PDUs; send the batch when it is full or has waited
        :data:`_MAX_WAIT` (a slow producer still shows its first matches promptly)."""
        if not self._wire:
            self._since = time.monotonic()
        self._wire.append(wire)
        self._size += len(wire)
        if self._size >= max(max_pdu, _BATCH_BYTES) or \
                time.monotonic() - self._since >= _MAX_WAIT:
            self.flush()

    def flush(self) -> None:
        if self._wire:
            wire, self._wire, self._size = b"".join(self._wire), [], 0
            send_encoded(self._dul, wire)


class PendingResponses:
    """The pending responses (status FF00) of one C-FIND request (PS3.7 9.1.2.1.6).

    The handler sends each match here rather than yielding it to pynetdicom, whose
    per-response loop cost about as much CPU as finding and encoding the match; only
    the final status (Success, Cancel or a failure) still goes through pynetdicom, and
    it leaves after every pending response handed in before it.
    """

    def __init__(self, event: Any) -> None:
        install(event.assoc)
        self._dimse = event.assoc.dimse
        self._outbox: _Outbox = self._dimse._pacs_outbox
        self._context_id = int(event.context.context_id)
        self._command = find_response(event.request.AffectedSOPClassUID,
                                      event.request.MessageID, 0xFF00)
        # The peer's maximum PDU length, fixed at negotiation: read once per request, not
        # through pynetdicom's properties for every match.
        self._max_pdu = self._dimse.maximum_pdu_size
        self._first = True

    def send(self, identifier: bytes) -> None:
        """Send one match, ``identifier`` encoded in the context's transfer syntax.

        The first match leaves at once, the others in batches: the peer then reads and
        prints the first responses while the rest are still being found and encoded.
        Sent with the second batch, it waited for half the query's work.
        """
        max_pdu = self._max_pdu
        self._outbox.add(_pdus(self._context_id, self._command, identifier, max_pdu), max_pdu)
        if self._first:
            self._first = False
            self._outbox.flush()


def _success_command(primitive: Any) -> bytes | None:
    """The command set of a Success C-STORE-RSP or C-ECHO-RSP primitive, else ``None``."""
    if primitive.Status != 0x0000 or primitive.MessageIDBeingRespondedTo is None:
        return None
    if isinstance(primitive, C_STORE):
        return store_success(primitive.AffectedSOPClassUID,
                             primitive.MessageIDBeingRespondedTo,
                             primitive.AffectedSOPInstanceUID)
    if isinstance(primitive, C_ECHO):
        return echo_success(primitive.AffectedSOPClassUID, primitive.MessageIDBeingRespondedTo)
    return None


def install(assoc: Any) -> None:
    """Route this association's hot-path responses through the encoders above."""
    dimse = assoc.dimse
    if getattr(dimse, "_pacs_fast_find", False):
        return
    original = dimse.send_msg
    outbox = _Outbox(dimse.dul)
    dimse._pacs_outbox = outbox

    def send_msg(primitive: Any, context_id: int) -> None:
        max_pdu = dimse.maximum_pdu_size
        if isinstance(primitive, C_FIND) and primitive.MessageIDBeingRespondedTo is not None:
            if primitive.Status in _PENDING and primitive.Identifier is not None:
                command = outbox.pending_command(primitive.AffectedSOPClassUID,
                                                 primitive.MessageIDBeingRespondedTo,
                                                 primitive.Status)
                outbox.add(_pdus(context_id, command, primitive.Identifier.getvalue(),
                                 max_pdu), max_pdu)
                return
            if primitive.Status == 0x0000 and primitive.Identifier is None:
                outbox.add(_pdus(context_id, find_response(
                    primitive.AffectedSOPClassUID, primitive.MessageIDBeingRespondedTo,
                    0x0000), None, max_pdu), max_pdu)
                outbox.flush()
                return
        outbox.flush()
        command = _success_command(primitive)
        if command is not None:
            send_encoded(dimse.dul, _pdus(context_id, command, None, max_pdu))
            return
        original(primitive, context_id)

    dimse.send_msg = send_msg
    dimse._pacs_fast_find = True
