"""One HL7 v2 message in, one ACK out: dispatch to the patient and order services.

ADT^A01/A04/A05/A08/A28/A31 register or update a patient, ADT^A40 merges two; ORM^O01
and OMI^O23 create (ORC-1 NW), cancel (CA), change (XO) or report the status of (SC) an
order. Success is ``MSA-1 AA``; a refused message gets ``AE`` or ``AR`` (read from the one
error table, :data:`storage.errors.ERRORS`) and an ERR segment with the HL7 Table 0357
code and a patient-free reason (HL7 v2.5 2.14.5). Messages are decoded by MSH-18 and
answered in UTF-8 (``UNICODE UTF-8``).
"""

from __future__ import annotations

import logging

import hl7

from ris.errors import MissingAttribute, UnsupportedMessage
from ris.hl7 import messages as m
from ris.orders import Orders
from ris.patients import Patients
from ris.workflow import OrderStatus, parse_status
from storage.errors import PacsError, status_of
from storage.origin import Origin

log = logging.getLogger(__name__)

CHARSETS = {"": "utf-8", "ASCII": "ascii", "UNICODE UTF-8": "utf-8", "UNICODE": "utf-8",
            "8859/1": "latin-1", "8859/2": "iso8859-2", "8859/5": "iso8859-5"}
"""MSH-18 character set (HL7 Table 0211) → Python codec; absent means ASCII, read as
UTF-8 (its superset) for senders that leave it out."""

ADT_REGISTER = {"A01", "A04", "A05", "A08", "A28", "A31"}
ORDER_STATUS = {"IP": OrderStatus.IN_PROGRESS, "CM": OrderStatus.COMPLETED,
                "CA": OrderStatus.CANCELLED, "DC": OrderStatus.DISCONTINUED}
"""ORC-5 order status (HL7 Table 0038) → order status, for ORC-1 SC."""


def decode(block: bytes) -> str:
    """The message text, decoded by its MSH-18 (HL7 v2.5 2.15.9.18)."""
    first = block.split(b"\r", 1)[0]
    fields = first.split(first[3:4] or b"|")
    charset = fields[17].decode("ascii", "replace").split("^")[0].strip().upper() \
        if len(fields) > 17 else ""
    codec = CHARSETS.get(charset, "utf-8")
    try:
        return block.decode(codec)
    except UnicodeDecodeError:
        return block.decode("latin-1")


class Hl7Handler:
    """Process one message and build its acknowledgement."""

    def __init__(self, patients: Patients, orders: Orders) -> None:
        self._patients = patients
        self._orders = orders

    def handle_bytes(self, block: bytes, origin: Origin) -> bytes:
        """The MLLP listener's entry point: message bytes in, ACK bytes (UTF-8) out."""
        return self.handle(decode(block), origin).encode("utf-8")

    def handle(self, text: str, origin: Origin) -> str:
        text = text.replace("\r\n", "\r").replace("\n", "\r").strip("\r") + "\r"
        try:
            msg = hl7.parse(text)
            msg.segment("MSH")
        except Exception:  # not HL7 at all: reject without echoing any of it
            log.warning("HL7: unparseable message refused")
            return _bare_reject()
        kind = (m.get(msg, "MSH", 9), m.get(msg, "MSH", 9, 2))
        try:
            self._dispatch(msg, kind, origin)
        except PacsError as exc:
            log.warning("HL7 %s^%s refused: %s", *kind, exc.code)
            return _ack(msg, exc)
        except Exception:
            log.exception("HL7 %s^%s failed", *kind)
            return _ack(msg, RuntimeError("internal error"))
        return _ack(msg, None)

    def _dispatch(self, msg: hl7.Message, kind: tuple[str, str], origin: Origin) -> None:
        message_type, event = kind
        if message_type == "ADT" and event in ADT_REGISTER:
            self._patients.register(m.patient(msg), origin)
        elif message_type == "ADT" and event == "A40":
            survivor = m.patient(msg)
            self._patients.register(survivor, origin)
            self._patients.merge(survivor.patient_id, m.prior_patient_id(msg), origin)
        elif (message_type, event) in (("ORM", "O01"), ("OMI", "O23")):
            groups = m.count(msg, "ORC")
            if groups == 0:
                raise MissingAttribute("ORC segment is missing")
            for n in range(1, groups + 1):
                self._order(msg, n, origin)
        else:
            raise UnsupportedMessage(f"message type {message_type}^{event} is not processed")

    def _order(self, msg: hl7.Message, n: int, origin: Origin) -> None:
        control = m.order_control(msg, n)
        if control == "NW":
            self._orders.create(m.order(msg, n), origin)
            return
        accession = m.accession(msg, n)
        if not accession:
            raise MissingAttribute("no accession number (IPC-1, OBR-18 or ORC-3)")
        if control in ("CA", "DC", "OC"):
            self._orders.advance(accession, OrderStatus.CANCELLED, origin)
        elif control == "XO":
            self._orders.change(accession, m.order(msg, n), origin)
        elif control == "SC":
            code = m.order_status(msg, n)
            self._orders.advance(accession, ORDER_STATUS.get(code) or parse_status(code), origin)
        else:
            raise UnsupportedMessage(f"order control {control or '(empty)'} is not processed")


def _ack(msg: hl7.Message, exc: BaseException | None) -> str:
    if exc is None:
        ack = msg.create_ack("AA")
    else:
        code, error = status_of(exc).hl7
        ack = msg.create_ack(code)
        ack.segment("MSA").assign_field(msg.escape(str(exc)[:80]), 3)
    ack.segment("MSH").assign_field("UNICODE UTF-8", 18)
    text = str(ack)
    if exc is not None:
        code, error = status_of(exc).hl7
        reason = msg.escape(str(exc)[:200])
        text += f"ERR|||{error}^{msg.escape(_TABLE_0357.get(error, 'Error'))}^HL70357|E||||{reason}\r"
    return text


_TABLE_0357 = {101: "Required field missing", 102: "Data type error",
               103: "Table value not found", 200: "Unsupported message type",
               204: "Unknown key identifier", 205: "Duplicate key identifier",
               207: "Application internal error"}


def _bare_reject() -> str:
    return ("MSH|^~\\&|PACS||||||ACK|0|P|2.5||||||UNICODE UTF-8\r"
            "MSA|AR|\rERR|||100^Segment sequence error^HL70357|E||||message cannot be parsed\r")
