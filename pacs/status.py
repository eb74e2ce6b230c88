"""Domain exceptions → DIMSE status, read from the one table in :mod:`storage.errors`."""

from __future__ import annotations

import enum

from pydicom.dataset import Dataset

from storage.errors import status_of


class Service(enum.Enum):
    STORE = "store"
    FIND = "find"
    RETRIEVE = "retrieve"
    N = "n_service"  # DIMSE-N: MPPS N-CREATE / N-SET (PS3.7 10.1)


def dimse_status(exc: BaseException, service: Service) -> int:
    """The DIMSE status for ``exc`` in ``service`` (PS3.4 B.2.3, C.4.1.1.4, C.4.2.1.5)."""
    row = status_of(exc)
    code = getattr(row, service.value)
    if code is None:
        return 0xA900 if service is Service.STORE else 0xC000
    return int(code)


def failure(exc: BaseException, service: Service) -> Dataset:
    """A status dataset with the code and a short, patient-free Error Comment (LO, 64)."""
    status = Dataset()
    status.Status = dimse_status(exc, service)
    status.ErrorComment = str(exc)[:64]
    return status
