"""HL7 v2 segments → RIS requests (patients, orders), with the ``hl7`` package's parser.

Fields follow HL7 v2.5 and IHE Radiology (Rad TF-2 4.1 ADT, 4.2/4.4 ORM and OMI): PID
for demographics, MRG for merges, ORC/OBR (and IPC, TQ1 in OMI^O23) for orders. Names
are turned into DICOM Person Names (family^given^middle^prefix^suffix, PS3.5 6.2.1).
"""

from __future__ import annotations

import hl7

from ris.errors import MissingAttribute
from ris.orders import OrderRequest, StepRequest
from ris.patients import PatientInfo

PRIORITY = {"S": "STAT", "A": "HIGH", "T": "HIGH", "P": "ROUTINE", "R": "ROUTINE",
            "C": "ROUTINE"}
"""HL7 Table 0027 priority → Requested Procedure Priority (PS3.3 C.4.11)."""


def get(msg: hl7.Message, segment: str, field: int, component: int = 1, *,
        occurrence: int = 1, repetition: int = 1) -> str:
    """One component, unescaped; ``""`` when the segment or field is absent."""
    try:
        value = msg.extract_field(segment, occurrence, field, repetition, component)
    except (KeyError, IndexError):
        return ""
    return str(value or "").strip()


def has(msg: hl7.Message, segment: str) -> bool:
    try:
        msg.segments(segment)
    except KeyError:
        return False
    return True


def count(msg: hl7.Message, segment: str) -> int:
    try:
        return len(msg.segments(segment))
    except KeyError:
        return 0


def person_name(msg: hl7.Message, segment: str, field: int, *, first: int = 1,
                occurrence: int = 1) -> str:
    """XPN (``first`` = 1) or XCN (``first`` = 2) → DICOM PN, trailing ``^`` removed."""
    family, given, middle, suffix, prefix = (
        get(msg, segment, field, first + n, occurrence=occurrence) for n in range(5))
    return "^".join([family, given, middle, prefix, suffix]).rstrip("^")


def patient(msg: hl7.Message) -> PatientInfo:
    """The PID segment (HL7 v2.5 3.4.2).

    Raises
    ------
    MissingAttribute
        No PID segment or no patient identifier (PID-3).
    """
    if not has(msg, "PID"):
        raise MissingAttribute("PID segment is missing")
    patient_id = get(msg, "PID", 3)
    if not patient_id:
        raise MissingAttribute("PID-3 patient identifier is missing")
    address = " ".join(v for v in (get(msg, "PID", 11, n) for n in range(1, 6)) if v)
    return PatientInfo(
        patient_id=patient_id, name=person_name(msg, "PID", 5),
        birth_date=get(msg, "PID", 7)[:8], sex=get(msg, "PID", 8), issuer=get(msg, "PID", 3, 4),
        address=address[:255], phone=get(msg, "PID", 13)[:64])


def prior_patient_id(msg: hl7.Message) -> str:
    """MRG-1, the patient ID being merged away (ADT^A40).

    Raises
    ------
    MissingAttribute
    """
    value = get(msg, "MRG", 1)
    if not value:
        raise MissingAttribute("MRG-1 prior patient identifier is missing")
    return value


def _datetime(value: str) -> tuple[str, str]:
    digits = "".join(ch for ch in value.split("+")[0].split("-")[0] if ch.isdigit() or ch == ".")
    return digits[:8], digits[8:14]


def order_control(msg: hl7.Message, n: int) -> str:
    """ORC-1 of the ``n``-th order group (NW, CA, XO, SC, ...)."""
    return get(msg, "ORC", 1, occurrence=n).upper()


def order_status(msg: hl7.Message, n: int) -> str:
    """ORC-5 order status (HL7 Table 0038), for ORC-1 SC."""
    return get(msg, "ORC", 5, occurrence=n).upper()


def accession(msg: hl7.Message, n: int) -> str:
    """IPC-1 (OMI^O23), else OBR-18 (IHE Rad TF-2 4.4.4.1.2), else the filler number."""
    occurrence = min(n, count(msg, "OBR")) or 1
    return (get(msg, "IPC", 1, occurrence=n) or get(msg, "OBR", 18, occurrence=occurrence)
            or get(msg, "ORC", 3, occurrence=n))


def order(msg: hl7.Message, n: int) -> OrderRequest:
    """The ``n``-th ORC group as an :class:`OrderRequest`.

    Raises
    ------
    MissingAttribute
        No modality for the step (IPC-5 or OBR-24).
    """
    obr = min(n, count(msg, "OBR")) or 1
    modality = get(msg, "IPC", 5, occurrence=n) or get(msg, "OBR", 24, occurrence=obr)
    if not modality:
        raise MissingAttribute("no modality (IPC-5 or OBR-24)")
    start = (get(msg, "TQ1", 7, occurrence=n) or get(msg, "ORC", 7, 4, occurrence=n)
             or get(msg, "OBR", 27, 4, occurrence=obr) or get(msg, "OBR", 36, occurrence=obr))
    date, time = _datetime(start)
    priority_code = (get(msg, "TQ1", 9, occurrence=n) or get(msg, "ORC", 7, 6, occurrence=n)
                     or get(msg, "OBR", 27, 6, occurrence=obr) or get(msg, "OBR", 5, occurrence=obr))
    referring = person_name(msg, "ORC", 12, first=2, occurrence=n) or person_name(
        msg, "OBR", 16, first=2, occurrence=obr)
    department = (get(msg, "ORC", 17, 2, occurrence=n) or get(msg, "ORC", 17, occurrence=n)
                  or get(msg, "PV1", 10))
    step = StepRequest(
        modality=modality, station_ae=get(msg, "IPC", 9, occurrence=n),
        station_name=get(msg, "IPC", 7, occurrence=n)[:16], start_date=date, start_time=time,
        description=get(msg, "OBR", 4, 2, occurrence=obr),
        performing_physician=person_name(msg, "OBR", 34, first=2, occurrence=obr))
    return OrderRequest(
        patient=patient(msg), steps=[step], accession_number=accession(msg, n),
        placer_order_number=get(msg, "ORC", 2, occurrence=n) or get(msg, "OBR", 2,
                                                                     occurrence=obr),
        procedure_code=get(msg, "OBR", 4, occurrence=obr),
        procedure_description=get(msg, "OBR", 4, 2, occurrence=obr),
        priority=PRIORITY.get(priority_code.upper()[:1], "ROUTINE"),
        referring_physician_name=referring, department=department,
        reason=get(msg, "OBR", 31, 2, occurrence=obr) or get(msg, "OBR", 31, occurrence=obr))
