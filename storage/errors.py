"""The domain error hierarchy and its one mapping table.

Every failure the archive can report is a :class:`PacsError` with a stable ``code``. The
table :data:`ERRORS` maps each code to its DIMSE status per service and its HTTP status;
``pacs.status`` and the HTTP problem handler read it, nobody else chooses numbers.
The DIMSE values follow PS3.4 Annex B (C-STORE), C.4 (Q/R) and PS3.7 C.
"""

from __future__ import annotations

from dataclasses import dataclass


class PacsError(Exception):
    """Base of every expected failure; ``str(exc)`` is safe to log (no patient data)."""

    code = "PacsError"


class UnreadableDataset(PacsError):
    code = "UnreadableDataset"


class DatasetDoesNotMatchSopClass(PacsError):
    """A Type 1 UID is missing or malformed, or the dataset contradicts the request."""

    code = "DatasetDoesNotMatchSopClass"


class SopClassNotSupported(PacsError):
    code = "SopClassNotSupported"


class InvalidQuery(PacsError):
    code = "InvalidQuery"


class StorageUnavailable(PacsError):
    code = "StorageUnavailable"


class StorageFull(PacsError):
    code = "StorageFull"


class IndexUnavailable(PacsError):
    code = "IndexUnavailable"


class ObjectNotFound(PacsError):
    code = "ObjectNotFound"


class NotFound(PacsError):
    code = "NotFound"


class UnknownMoveDestination(PacsError):
    code = "UnknownMoveDestination"


class Conflict(PacsError):
    code = "Conflict"


class NotAuthorised(PacsError):
    """The caller is known but its role does not allow the operation (HTTP 403)."""

    code = "NotAuthorised"


class NotAuthenticated(PacsError):
    """No credentials, or wrong ones (HTTP 401 with a ``WWW-Authenticate`` challenge)."""

    code = "NotAuthenticated"


class TooManyAttempts(PacsError):
    """Too many failed logins for this user or address; ``retry_after`` seconds to wait."""

    code = "TooManyAttempts"

    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after


@dataclass(frozen=True)
class ErrorStatus:
    """How one error code is reported on each interface."""

    store: int | None
    find: int | None
    retrieve: int | None
    http: int
    n_service: int = 0x0110
    """DIMSE-N (MPPS N-CREATE/N-SET, PS3.7 C): 0x0110 Processing Failure unless stated."""
    hl7: tuple[str, int] = ("AE", 207)
    """HL7 v2 ACK: MSA-1 acknowledgment code and ERR-3 error code (HL7 Table 0357)."""


ERRORS: dict[str, ErrorStatus] = {
    "UnreadableDataset": ErrorStatus(0xC000, None, None, 400),
    "DatasetDoesNotMatchSopClass": ErrorStatus(0xA900, None, None, 400),
    "SopClassNotSupported": ErrorStatus(0x0122, 0x0122, 0x0122, 400),
    "InvalidQuery": ErrorStatus(None, 0xA900, 0xA900, 400, 0x0106, ("AE", 102)),
    "StorageFull": ErrorStatus(0xA700, 0xA700, 0xA701, 507),
    "StorageUnavailable": ErrorStatus(0xA700, 0xA700, 0xA702, 503),
    "IndexUnavailable": ErrorStatus(0xA700, 0xA700, 0xA702, 503, 0x0110, ("AR", 207)),
    "ObjectNotFound": ErrorStatus(0xA700, None, 0xA702, 404),
    "UnknownMoveDestination": ErrorStatus(None, None, 0xA801, 404),
    "NotAuthorised": ErrorStatus(0x0124, 0x0124, 0x0124, 403),
    "NotAuthenticated": ErrorStatus(0x0124, 0x0124, 0x0124, 401),
    "TooManyAttempts": ErrorStatus(None, None, None, 429),
    "NotFound": ErrorStatus(None, None, None, 404, hl7=("AE", 204)),
    "Conflict": ErrorStatus(None, None, None, 409),
    # RIS (ris/errors.py): orders, MPPS (PS3.4 F.7.2 statuses), HL7 ACKs.
    "InvalidTransition": ErrorStatus(None, None, None, 409, 0x0110, ("AE", 207)),
    "UnknownOrder": ErrorStatus(None, None, None, 404, 0x0112, ("AE", 204)),
    "UnknownPatient": ErrorStatus(None, None, None, 404, 0x0112, ("AE", 204)),
    "NoSuchInstance": ErrorStatus(None, None, None, 404, 0x0112, ("AE", 204)),
    "DuplicateInstance": ErrorStatus(None, None, None, 409, 0x0111, ("AE", 205)),
    "MissingAttribute": ErrorStatus(None, 0xA900, None, 400, 0x0120, ("AE", 101)),
    "InvalidAttributeValue": ErrorStatus(None, 0xA900, None, 400, 0x0106, ("AE", 103)),
    "UnsupportedMessage": ErrorStatus(None, None, None, 400, 0x0110, ("AR", 200)),
}
"""One row per error code (STYLE.md "Errors → DICOM status codes")."""

UNEXPECTED = ErrorStatus(0xC211, 0xC311, 0xC511, 500)
"""What an unexpected exception becomes: pynetdicom's own processing-failure codes."""


def status_of(exc: BaseException) -> ErrorStatus:
    """The row of :data:`ERRORS` for ``exc`` (unknown exceptions get :data:`UNEXPECTED`)."""
    if isinstance(exc, PacsError):
        for cls in type(exc).__mro__:
            row = ERRORS.get(getattr(cls, "code", ""))
            if row is not None:
                return row
    return UNEXPECTED
