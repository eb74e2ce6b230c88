"""The savings report: per-study figures from the cost model, summed by group.

Each study is priced once (:func:`price_study`); groups are sums of their studies, rounded
to the currency's precision, and the totals are the sums of the rounded groups, so the
totals always equal the sum of the groups in every output format.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, fields
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from ris.savings.costmodel import CostModel
from ris.savings.sources import StudyFacts

GB = Decimal(10**9)
"""Storage is billed in decimal gigabytes, as object stores and disks are sold."""


class Group(enum.StrEnum):
    """How the report's rows are formed."""

    MONTH = "month"
    MODALITY = "modality"
    DEPARTMENT = "department"
    REFERRING = "referring"


NONE_KEY = "-"
"""Group key of studies without a value for the grouping attribute."""


@dataclass
class SavingsRow:
    """The figures of one group (or of the totals). Money in the report's currency."""

    key: str
    studies: int = 0
    images: int = 0
    delivered_studies: int = 0
    printed_studies: int = 0
    printed_sheets: int = 0
    films_avoided: int = 0
    film_cost_avoided: Decimal = Decimal(0)
    envelope_cost_avoided: Decimal = Decimal(0)
    paper_cost_avoided: Decimal = Decimal(0)
    cd_cost_avoided: Decimal = Decimal(0)
    costs_avoided: Decimal = Decimal(0)
    printed_cost: Decimal = Decimal(0)
    storage_bytes: int = 0
    storage_cost: Decimal = Decimal(0)
    net_savings: Decimal = Decimal(0)

    def add(self, other: SavingsRow) -> None:
        for f in fields(self):
            if f.name != "key":
                setattr(self, f.name, getattr(self, f.name) + getattr(other, f.name))

    def rounded(self, model: CostModel) -> SavingsRow:
        out = SavingsRow(self.key)
        for f in fields(self):
            value = getattr(self, f.name)
            setattr(out, f.name, model.money(value) if isinstance(value, Decimal) else value)
        # Net is recomputed from the rounded parts so that every row adds up exactly.
        out.costs_avoided = (out.film_cost_avoided + out.envelope_cost_avoided
                             + out.paper_cost_avoided + out.cd_cost_avoided)
        out.net_savings = out.costs_avoided - out.storage_cost
        return out


COLUMNS: tuple[str, ...] = tuple(f.name for f in fields(SavingsRow))


def price_study(study: StudyFacts, model: CostModel) -> SavingsRow:
    """One study's figures (unrounded).

    A study marked as printed avoided nothing and carries what its film cost; any other
    study avoided the film it would have been printed on (images per sheet by modality,
    capped per study), its envelope, its paper report and its share of a CD. Every study
    costs its storage for the retention period.
    """
    row = SavingsRow(study.study_uid, studies=1, images=study.images,
                     storage_bytes=study.size_bytes)
    row.delivered_studies = int(study.delivered)
    row.storage_cost = (Decimal(study.size_bytes) / GB * model.storage_price_per_gb_month
                        * model.storage_retention_months)
    if study.printed_sheets:
        row.printed_studies = 1
        row.printed_sheets = sum(n for n, _ in study.printed_sheets)
        row.printed_cost = model.printed_cost(study.printed_sheets)
    elif study.delivered or not model.only_delivered:
        sheets: dict[str, int] = {}
        for modality, images in study.images_by_series:
            sheets[modality] = sheets.get(modality, 0) + model.sheets_for_series(modality,
                                                                                 images)
        for modality, n in sheets.items():
            n = model.cap_sheets(modality, n)
            row.films_avoided += n
            row.film_cost_avoided += n * model.sheet_price(model.sheet_size(modality))
        if row.films_avoided:
            row.envelope_cost_avoided = model.envelope_cost
            row.paper_cost_avoided = model.paper_report_cost
            row.cd_cost_avoided = model.cd_cost * model.cd_share
    row.costs_avoided = (row.film_cost_avoided + row.envelope_cost_avoided
                         + row.paper_cost_avoided + row.cd_cost_avoided)
    row.net_savings = row.costs_avoided - row.storage_cost
    return row


def display_name(person_name: str) -> str:
    """A DICOM PN (PS3.5 6.2.1, ``FAMILY^GIVEN^MIDDLE^PREFIX^SUFFIX``) as plain text."""
    alphabetic = person_name.split("=", 1)[0]
    parts = [p.strip() for p in alphabetic.split("^")]
    ordered = parts[3:4] + parts[:3] + parts[4:5]
    return " ".join(p for p in ordered if p)


KEYS: dict[Group, Callable[[StudyFacts], str]] = {
    Group.MONTH: lambda s: s.exam_date.strftime("%Y-%m"),
    Group.MODALITY: lambda s: s.primary_modality,
    Group.DEPARTMENT: lambda s: s.department,
    Group.REFERRING: lambda s: display_name(s.referring),
}


def aggregate(studies: Iterable[tuple[StudyFacts, SavingsRow]], group: Group,
              model: CostModel) -> list[SavingsRow]:
    """Rounded rows, one per value of ``group``, sorted by key."""
    sums: dict[str, SavingsRow] = {}
    for study, priced in studies:
        key = KEYS[group](study) or NONE_KEY
        sums.setdefault(key, SavingsRow(key)).add(priced)
    return [sums[k].rounded(model) for k in sorted(sums)]


def total(rows: Iterable[SavingsRow]) -> SavingsRow:
    out = SavingsRow("total")
    for row in rows:
        out.add(row)
    return out


@dataclass
class SavingsReport:
    """The report for one period: rows by the chosen group, totals, and chart series."""

    start: date
    end: date
    group: Group
    currency: str
    generated_at: datetime
    rows: list[SavingsRow]
    totals: SavingsRow
    by_month: list[SavingsRow]
    by_modality: list[SavingsRow]
    storage_growth: list[tuple[str, int]]
    cost_model: CostModel
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """The JSON form (money as numbers in :attr:`currency`)."""
        return {
            "from": self.start.isoformat(), "to": self.end.isoformat(),
            "group": self.group.value, "currency": self.currency,
            "generated_at": self.generated_at.isoformat(timespec="seconds"),
            "groups": [row_dict(r) for r in self.rows],
            "totals": row_dict(self.totals),
            "charts": {
                "savings_per_month": [{"month": r.key, "net_savings": number(r.net_savings),
                                       "costs_avoided": number(r.costs_avoided)}
                                      for r in self.by_month],
                "films_avoided_per_modality": [{"modality": r.key,
                                                "films_avoided": r.films_avoided}
                                               for r in self.by_modality],
                "storage_growth": [{"month": m, "bytes": b} for m, b in self.storage_growth],
            },
            "cost_model": self.cost_model.model_dump(mode="json"),
        }


def number(value: Decimal) -> int | float:
    return int(value) if value == value.to_integral_value() else float(value)


def row_dict(row: SavingsRow) -> dict[str, Any]:
    return {name: number(v) if isinstance(v, Decimal) else v
            for name, v in ((n, getattr(row, n)) for n in COLUMNS)}
