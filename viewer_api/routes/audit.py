"""``/api/audit``: the audit trail for auditors, as JSON pages or a CSV export.

Searching the trail is itself audited (``audit-query``): the records name patients.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import StreamingResponse
from pydantic import BaseModel

from storage.audit import AuditFilter
from storage.index.models import AuditEvent
from viewer_api.auth import Permission, require
from viewer_api.deps import OriginDep, ServicesDep

router = APIRouter(prefix="/api/audit", tags=["audit"],
                   dependencies=[require(Permission.AUDIT_READ)])

COLUMNS = ("seq", "at", "channel", "username", "role", "calling_ae", "called_ae", "address",
           "action", "outcome", "patient_id", "study_uid", "detail", "hash")


class AuditRecord(BaseModel):
    seq: int
    at: datetime
    channel: str
    username: str
    role: str
    calling_ae: str
    called_ae: str
    address: str
    action: str
    outcome: str
    patient_id: str
    study_uid: str
    detail: str
    hash: str


class ChainStatus(BaseModel):
    intact: bool
    records: int
    broken_at: int | None
    reason: str


def _filter(user: str = "", role: str = "", action: str = "", outcome: str = "",
            channel: str = "", calling_ae: str = "", patient_id: str = "", study_uid: str = "",
            address: str = "", since: datetime | None = None,
            until: datetime | None = None) -> AuditFilter:
    """Query parameters → filter; ``since``/``until`` are UTC ISO 8601 times."""
    def naive(t: datetime | None) -> datetime | None:
        return t.astimezone(UTC).replace(tzinfo=None) if t and t.tzinfo else t

    return AuditFilter(username=user, role=role, action=action, outcome=outcome,
                       channel=channel, calling_ae=calling_ae, patient_id=patient_id,
                       study_uid=study_uid, address=address, since=naive(since),
                       until=naive(until))


def _record(e: AuditEvent) -> AuditRecord:
    return AuditRecord(**{c: getattr(e, c) for c in COLUMNS})


def _csv_rows(events: Iterator[AuditEvent]) -> Iterator[str]:
    buf = io.StringIO()
    out = csv.writer(buf)
    out.writerow(COLUMNS)
    for n, event in enumerate(events):
        row = [getattr(event, c) for c in COLUMNS]
        row[1] = event.at.isoformat(timespec="microseconds") + "Z"
        out.writerow(row)
        if n % 500 == 0:
            yield buf.getvalue()
            buf.seek(0)
            buf.truncate()
    yield buf.getvalue()


@router.get("", response_model=list[AuditRecord])
def search_audit(request: Request, services: ServicesDep, origin: OriginDep,
                 where: Annotated[AuditFilter, Depends(_filter)],
                 limit: Annotated[int, Query(ge=1, le=10_000)] = 100,
                 offset: Annotated[int, Query(ge=0)] = 0,
                 format: Literal["json", "csv"] | None = None) -> object:
    """Newest first. ``format=csv`` (or ``Accept: text/csv``) exports every match as CSV."""
    csv_wanted = format == "csv" or (
        format is None and "text/csv" in request.headers.get("accept", ""))
    services.audit.record(origin, "audit-query", "ok", patient_id=where.patient_id,
                          study_uid=where.study_uid,
                          detail={"format": "csv" if csv_wanted else "json"})
    if csv_wanted:
        events = services.audit.iter_search(where)
        return StreamingResponse(_csv_rows(events), media_type="text/csv; charset=utf-8",
                                 headers={"Content-Disposition":
                                          'attachment; filename="audit.csv"'})
    return [_record(e) for e in services.audit.search(where, limit=limit, offset=offset)]


@router.get("/verify")
def verify_chain(services: ServicesDep) -> ChainStatus:
    """Walk the hash chain (as ``pacs audit verify``) and report the first broken record."""
    report = services.audit.verify()
    return ChainStatus(intact=report.intact, records=report.records,
                       broken_at=report.broken_at, reason=report.reason)
