"""Who asked: every service call carries an :class:`Origin` so the service can audit it."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Origin:
    """The caller of a service operation, as Orthanc's ``DicomInstanceOrigin``.

    ``channel`` is ``dimse``, ``http``, ``hl7`` or ``cli``. HTTP origins carry the
    authenticated ``username`` and its ``role``; DIMSE origins the calling AE title.
    """

    channel: str
    calling_ae: str = ""
    called_ae: str = ""
    address: str = ""
    username: str = ""
    role: str = ""


CLI = Origin(channel="cli", username="cli")
