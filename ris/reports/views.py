"""What the report service returns: plain values, no ORM objects outside a session."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from ris.reports.models import Report, ReportAddendum, ReportStatus


@dataclass(frozen=True)
class AddendumView:
    id: int
    text: str
    signer: str
    signed_at: datetime
    digest: str
    signature: str
    key_id: str
    sr_instance_uid: str

    @classmethod
    def of(cls, row: ReportAddendum) -> AddendumView:
        return cls(row.id, row.text, row.signer, row.signed_at, row.digest, row.signature,
                   row.key_id, row.sr_instance_uid)


@dataclass(frozen=True)
class ReportView:
    id: int
    study_uid: str
    accession_number: str
    status: ReportStatus
    text: str
    author: str
    created_at: datetime
    updated_at: datetime
    signer: str
    signed_at: datetime | None
    digest: str
    signature: str
    key_id: str
    sr_series_uid: str
    sr_instance_uid: str
    oru_status: str
    oru_attempts: int
    oru_error: str
    addenda: list[AddendumView] = field(default_factory=list)

    @classmethod
    def of(cls, row: Report, addenda: list[ReportAddendum]) -> ReportView:
        return cls(row.id, row.study_uid, row.accession_number, ReportStatus(row.status),
                   row.text, row.author, row.created_at, row.updated_at, row.signer,
                   row.signed_at, row.digest, row.signature, row.key_id, row.sr_series_uid,
                   row.sr_instance_uid, row.oru_status, row.oru_attempts, row.oru_error,
                   [AddendumView.of(a) for a in addenda])


def report_content(row: Report | ReportView) -> dict[str, Any]:
    """The signed content of a final report (see :mod:`ris.reports.signing`)."""
    return {"kind": "report", "id": row.id, "study_uid": row.study_uid,
            "accession_number": row.accession_number, "text": row.text,
            "signer": row.signer,
            "signed_at": row.signed_at.isoformat() if row.signed_at else ""}


def addendum_content(report_id: int, report_digest: str,
                     row: ReportAddendum | AddendumView) -> dict[str, Any]:
    """The signed content of an addendum, chained to the report's digest."""
    return {"kind": "addendum", "report_id": report_id, "report_digest": report_digest,
            "text": row.text, "signer": row.signer, "signed_at": row.signed_at.isoformat()}


@dataclass(frozen=True)
class PartCheck:
    what: str  # "report" or "addendum N"
    digest_ok: bool
    signature_ok: bool
    key_known: bool


@dataclass(frozen=True)
class Verification:
    report_id: int
    status: ReportStatus
    signed: bool
    intact: bool
    key_id: str
    parts: list[PartCheck]
