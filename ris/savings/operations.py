"""Operations figures: workload, turnaround, storage growth and ingest errors.

Read from the index and the audit trail. Turnaround runs from acquisition (StudyDate and
StudyTime, PS3.3 C.7.2.1) to receipt in the archive, and from receipt to the first
digital delivery; :class:`ReportTimes` is the seam where the RIS will add "receipt to
final report" once reports exist.
"""

from __future__ import annotations

import json
import statistics
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any, Protocol

from sqlalchemy import func, select

from ris.savings.sources import DELIVERY_ACTIONS, parse_da, period_filter
from storage.index.database import Database
from storage.index.models import AuditEvent, Instance, Revision, Series, Study
from storage.objects import ObjectStore

GROWTH_WINDOW_DAYS = 30
"""Storage growth is forecast from the mean daily ingest of the last 30 days."""


class ReportTimes(Protocol):
    """Seam: when each study's final report was signed (from the RIS, once it exists)."""

    def signed_at(self, study_uids: Sequence[str]) -> dict[str, datetime]: ...


class NoReports:
    def signed_at(self, study_uids: Sequence[str]) -> dict[str, datetime]:
        return {}


@dataclass
class Turnaround:
    """Median and 90th percentile, in minutes, of one interval over ``count`` studies."""

    count: int
    median_minutes: float | None
    p90_minutes: float | None

    @classmethod
    def of(cls, minutes: list[float]) -> Turnaround:
        if not minutes:
            return cls(0, None, None)
        ordered = sorted(minutes)
        p90 = ordered[min(len(ordered) - 1, int(round(0.9 * (len(ordered) - 1))))]
        return cls(len(ordered), round(statistics.median(ordered), 1), round(p90, 1))


@dataclass
class OperationsReport:
    start: date
    end: date
    studies_per_day: dict[str, dict[str, int]]
    turnaround: dict[str, dict[str, Turnaround]]
    storage_used_bytes: int
    storage_growth_bytes_per_day: float
    storage_free_bytes: int | None
    days_until_full: float | None
    ingest_errors: dict[str, dict[str, int]] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "from": self.start.isoformat(), "to": self.end.isoformat(),
            "studies_per_day": self.studies_per_day,
            "turnaround": {name: {m: vars(t) for m, t in by.items()}
                           for name, by in self.turnaround.items()},
            "storage": {"used_bytes": self.storage_used_bytes,
                        "growth_bytes_per_day": round(self.storage_growth_bytes_per_day),
                        "free_bytes": self.storage_free_bytes,
                        "days_until_full": None if self.days_until_full is None
                        else round(self.days_until_full, 1)},
            "ingest_errors": self.ingest_errors,
        }


def _acquired(da: str, tm: str) -> datetime | None:
    day = parse_da(da)
    if day is None:
        return None
    digits = "".join(ch for ch in tm.split(".", 1)[0] if ch.isdigit())[:6].ljust(6, "0")
    try:
        return datetime.combine(day, datetime.strptime(digits, "%H%M%S").time())
    except ValueError:
        return datetime.combine(day, datetime.min.time())


class Operations:
    """Computes :class:`OperationsReport` for a period."""

    def __init__(self, db: Database, objects: ObjectStore, *, quota_bytes: int = 0,
                 reports: ReportTimes | None = None) -> None:
        self._db = db
        self._objects = objects
        self._quota = quota_bytes
        self._reports = reports or NoReports()

    def storage_used(self) -> int:
        """Bytes of every archived object, current and superseded revisions."""
        with self._db.read() as s:
            current = s.scalar(select(func.coalesce(func.sum(Instance.size), 0))) or 0
            older = s.scalar(select(func.coalesce(func.sum(Revision.size), 0))) or 0
        return int(current) + int(older)

    def report(self, start: date, end: date, *, today: date | None = None) -> OperationsReport:
        today = today or datetime.now().date()
        per_day: dict[str, Counter[str]] = defaultdict(Counter)
        acquired_to_archived: dict[str, list[float]] = defaultdict(list)
        archived_to_viewed: dict[str, list[float]] = defaultdict(list)
        archived_to_report: dict[str, list[float]] = defaultdict(list)
        with self._db.read() as s:
            studies = s.execute(
                select(Study.id, Study.study_uid, Study.study_date, Study.study_time,
                       Study.created_at).where(period_filter(start, end))).all()
            # The modality with the most series names the study in these figures.
            best: dict[int, tuple[int, str]] = {}
            for study_fk, mod, n in s.execute(
                    select(Series.study_fk, Series.modality, func.count(Series.id))
                    .where(Series.study_fk.in_(select(Study.id).where(
                        period_filter(start, end)).scalar_subquery()))
                    .group_by(Series.study_fk, Series.modality)):
                if study_fk not in best or (n, mod) > best[study_fk]:
                    best[study_fk] = (n, mod or "-")
            modality = {pk: mod for pk, (_, mod) in best.items()}
            uids = [r.study_uid for r in studies]
            first_view = dict(s.execute(
                select(AuditEvent.study_uid, func.min(AuditEvent.at))
                .where(AuditEvent.action.in_(DELIVERY_ACTIONS), AuditEvent.outcome == "ok",
                       AuditEvent.study_uid.in_(select(Study.study_uid).where(
                           period_filter(start, end)).scalar_subquery()))
                .group_by(AuditEvent.study_uid)).all())
            since = datetime.combine(today - timedelta(days=GROWTH_WINDOW_DAYS - 1),
                                     datetime.min.time())
            recent = s.scalar(select(func.coalesce(func.sum(Instance.size), 0))
                              .where(Instance.received_at >= since)) or 0
            failures = s.execute(
                select(AuditEvent.at, AuditEvent.detail)
                .where(AuditEvent.action == "store", AuditEvent.outcome == "failed",
                       AuditEvent.at >= datetime.combine(start, datetime.min.time()),
                       AuditEvent.at < datetime.combine(end + timedelta(days=1),
                                                        datetime.min.time()))).all()
        signed = self._reports.signed_at(uids)
        for r in studies:
            mod = modality.get(r.id, "-")
            per_day[r.created_at.date().isoformat()][mod] += 1
            acquired = _acquired(r.study_date, r.study_time)
            for bucket in (mod, "all"):
                if acquired is not None and r.created_at >= acquired:
                    acquired_to_archived[bucket].append(
                        (r.created_at - acquired).total_seconds() / 60)
                if r.study_uid in first_view:
                    archived_to_viewed[bucket].append(
                        max(0.0, (first_view[r.study_uid] - r.created_at).total_seconds() / 60))
                if r.study_uid in signed:
                    archived_to_report[bucket].append(
                        max(0.0, (signed[r.study_uid] - r.created_at).total_seconds() / 60))
        errors: dict[str, Counter[str]] = defaultdict(Counter)
        for at, detail in failures:
            try:
                code = json.loads(detail or "{}").get("error", "unknown")
            except ValueError:
                code = "unknown"
            errors[at.date().isoformat()][code] += 1
        used = self.storage_used()
        rate = float(recent) / GROWTH_WINDOW_DAYS
        free = self._free(used)
        return OperationsReport(
            start, end,
            studies_per_day={d: dict(sorted(c.items())) for d, c in sorted(per_day.items())},
            turnaround={name: {m: Turnaround.of(v) for m, v in sorted(series.items())}
                        for name, series in (("acquired_to_archived", acquired_to_archived),
                                             ("archived_to_first_view", archived_to_viewed),
                                             ("archived_to_final_report", archived_to_report))},
            storage_used_bytes=used, storage_growth_bytes_per_day=rate,
            storage_free_bytes=free,
            days_until_full=None if free is None or rate <= 0 else free / rate,
            ingest_errors={d: dict(c) for d, c in sorted(errors.items())},
        )

    def _free(self, used: int) -> int | None:
        """Room left: the quota minus what is used, else the filesystem's free space."""
        if self._quota > 0:
            return max(0, self._quota - used)
        free_bytes = getattr(self._objects, "free_bytes", None)  # filesystem backend only
        return int(free_bytes()) if callable(free_bytes) else None
