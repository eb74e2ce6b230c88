"""The savings service: one entry point for the report, the printed marks and operations.

DIMSE-free and HTTP-free: the CLI (``pacs report savings``) and the REST routes
(``/api/reports/savings``, ``/reports/savings``) both call :meth:`SavingsService.report`.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import date, datetime, timedelta

from sqlalchemy import func, select

from ris.savings.costmodel import CostModel
from ris.savings.operations import Operations, OperationsReport, ReportTimes
from ris.savings.printed import PrintedRegister
from ris.savings.report import (
    Group,
    SavingsReport,
    aggregate,
    price_study,
    total,
)
from ris.savings.sources import NoOrders, OrderAttributes, header_departments, load_studies
from storage.errors import InvalidQuery
from storage.index.database import Database
from storage.index.models import Study
from storage.objects import ObjectStore

MAX_PERIOD_DAYS = 3 * 366
"""A report covers at most about three years; longer periods are split by the caller."""


class SavingsService:
    """Filmless savings and operations figures of the archive."""

    def __init__(self, db: Database, objects: ObjectStore, model: CostModel | None = None, *,
                 orders: OrderAttributes | None = None,
                 reports: ReportTimes | None = None) -> None:
        self.db = db
        self.model = model or CostModel()
        self.orders = orders or NoOrders()
        self.printed = PrintedRegister(db, self.model)
        self.operations = Operations(db, objects,
                                     quota_bytes=int(self.model.storage_quota_gb * 10**9),
                                     reports=reports)

    def report(self, start: date, end: date, group: Group = Group.MONTH) -> SavingsReport:
        """Savings of the studies whose exam date is in ``start``..``end`` (inclusive).

        Raises
        ------
        InvalidQuery
            ``end`` before ``start``, or a period longer than :data:`MAX_PERIOD_DAYS`.
        """
        check_period(start, end)
        with self.db.read() as s:
            studies = load_studies(s, start, end)
            if group is Group.DEPARTMENT:
                header_departments(s, studies)
            growth = self._storage_growth(s, start, end)
        overrides = self.orders.attributes([f.study_uid for f in studies])
        for f in studies:
            department, referring = overrides.get(f.study_uid, ("", ""))
            f.department = department or f.department
            f.referring = referring or f.referring
        priced = [(f, price_study(f, self.model)) for f in studies]
        rows = aggregate(priced, group, self.model)
        return SavingsReport(
            start=start, end=end, group=group, currency=self.model.currency,
            generated_at=datetime.now().replace(microsecond=0), rows=rows, totals=total(rows),
            by_month=aggregate(priced, Group.MONTH, self.model),
            by_modality=aggregate(priced, Group.MODALITY, self.model),
            storage_growth=growth, cost_model=self.model)

    def operations_report(self, start: date, end: date) -> OperationsReport:
        check_period(start, end)
        return self.operations.report(start, end)

    @staticmethod
    def _storage_growth(s, start: date, end: date) -> list[tuple[str, int]]:  # type: ignore[no-untyped-def]
        """Archive size at the end of each month of the period (by arrival month)."""
        months: dict[str, int] = defaultdict(int)
        before = datetime.combine(start.replace(day=1), datetime.min.time())
        base = s.scalar(select(func.coalesce(func.sum(Study.size_bytes), 0))
                        .where(Study.created_at < before)) or 0
        limit = datetime.combine(end, datetime.max.time())
        for created, size in s.execute(select(Study.created_at, Study.size_bytes).where(
                Study.created_at >= before, Study.created_at <= limit)):
            months[created.strftime("%Y-%m")] += int(size or 0)
        out, running = [], int(base)
        for month in month_range(start, end):
            running += months.get(month, 0)
            out.append((month, running))
        return out


def default_period(start: date | None, end: date | None) -> tuple[date, date]:
    """The requested period; by default the last twelve calendar months up to today."""
    end = end or date.today()
    if start is None:
        first = end.replace(day=1)
        for _ in range(11):
            first = (first - timedelta(days=1)).replace(day=1)
        start = first
    return start, end


def month_range(start: date, end: date) -> list[str]:
    out = []
    year, month = start.year, start.month
    while (year, month) <= (end.year, end.month):
        out.append(f"{year:04d}-{month:02d}")
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)
    return out


def check_period(start: date, end: date) -> None:
    if end < start:
        raise InvalidQuery("the period ends before it starts")
    if (end - start).days > MAX_PERIOD_DAYS:
        raise InvalidQuery(f"the period is longer than {MAX_PERIOD_DAYS} days")
