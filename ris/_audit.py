"""Audit records of RIS changes, written in the transaction that makes the change."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from storage.audit import append_events, event_values
from storage.origin import Origin


def audit_change(session: Session, origin: Origin, action: str, *, patient_id: str = "",
                 study_uid: str = "", detail: dict[str, Any] | None = None) -> None:
    """Record a change of patient data; it commits (or rolls back) with the change."""
    append_events(session.connection(), [event_values(
        origin, action, "ok", patient_id=patient_id, study_uid=study_uid, detail=detail)])
