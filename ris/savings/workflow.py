"""The RIS side of the savings and operations figures: orders and signed reports.

:class:`OrderDepartments` gives each study the department and referring physician of its
order (the order that issued its Study Instance UID, or the one a technologist linked it
to), and :class:`SignedReports` the time its first report was signed, for turnaround
times. Studies without an order or a report keep what their DICOM headers say.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import func, or_, select

from ris.models import Order
from ris.reports.models import Report
from storage.index.database import Database

_CHUNK = 500


def _chunks(values: Sequence[str]) -> list[list[str]]:
    return [list(values[i:i + _CHUNK]) for i in range(0, len(values), _CHUNK)]


class OrderDepartments:
    """``{study_uid: (department, referring physician)}`` from the RIS orders."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def attributes(self, study_uids: Sequence[str]) -> dict[str, tuple[str, str]]:
        found: dict[str, tuple[str, str]] = {}
        with self._db.read() as s:
            for chunk in _chunks(study_uids):
                rows = s.execute(select(Order.study_uid, Order.linked_study_uid, Order.department,
                                        Order.referring_physician_name).where(
                    or_(Order.study_uid.in_(chunk), Order.linked_study_uid.in_(chunk))))
                wanted = set(chunk)
                for study_uid, linked, department, referring in rows:
                    uid = linked if linked in wanted else study_uid
                    found[uid] = (department or "", referring or "")
        return found


class SignedReports:
    """``{study_uid: first signature time}`` of the studies with a signed report."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def signed_at(self, study_uids: Sequence[str]) -> dict[str, datetime]:
        found: dict[str, datetime] = {}
        with self._db.read() as s:
            for chunk in _chunks(study_uids):
                rows = s.execute(select(Report.study_uid, func.min(Report.signed_at))
                                 .where(Report.study_uid.in_(chunk),
                                        Report.signed_at.is_not(None))
                                 .group_by(Report.study_uid))
                found.update({uid: at for uid, at in rows})
        return found
