"""RIS domain errors: subclasses of :mod:`storage.errors`, mapped in its one table."""

from __future__ import annotations

from storage.errors import Conflict, InvalidQuery, NotFound, PacsError


class InvalidTransition(Conflict):
    """The order (or performed step) cannot move to the requested status."""

    code = "InvalidTransition"


class UnknownOrder(NotFound):
    code = "UnknownOrder"


class UnknownPatient(NotFound):
    code = "UnknownPatient"


class NoSuchInstance(NotFound):
    """An N-SET names an MPPS instance that was never created (PS3.7 C.4.2, 0x0112)."""

    code = "NoSuchInstance"


class DuplicateInstance(Conflict):
    """An N-CREATE for an SOP Instance that exists already (0x0111)."""

    code = "DuplicateInstance"


class MissingAttribute(InvalidQuery):
    """A required attribute or HL7 field is absent (DIMSE 0x0120, HL7 ERR code 101)."""

    code = "MissingAttribute"


class InvalidAttributeValue(InvalidQuery):
    """An attribute or field holds a value we cannot accept (DIMSE 0x0106, HL7 103)."""

    code = "InvalidAttributeValue"


class UnsupportedMessage(PacsError):
    """An HL7 message type or event we do not process (HL7 ERR code 200, ACK AR)."""

    code = "UnsupportedMessage"


__all__ = ["DuplicateInstance", "InvalidAttributeValue", "InvalidTransition",
           "MissingAttribute", "NoSuchInstance", "UnknownOrder", "UnknownPatient",
           "UnsupportedMessage"]
