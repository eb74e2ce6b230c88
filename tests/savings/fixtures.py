"""A fixed set of studies whose savings are known by hand (issue 6, acceptance 6).

Period 2025-01-01..2025-02-28, cost model :data:`MODEL` (CT capped at 3 sheets so the cap
is exercised with few files; CD share 0.2; storage priced high enough to be visible):

====  ==========  ===  ==============  =========  ==============  ====================
name  exam date   mod  images          dept       referring       what happens
====  ==========  ===  ==============  =========  ==============  ====================
A     2025-01-10  CT   2 series x 25   Radiology  NGUYEN^AN       4 sheets, capped to 3
C     2025-02-03  CR   1 series x 2    Emergency  TRAN^BINH       2 sheets; viewed (WADO)
D     2025-02-05  CR   1 series x 1    Emergency  NGUYEN^AN       marked printed, 1 sheet
E     2025-03-01  CT   1 series x 1    Radiology  NGUYEN^AN       outside the period
====  ==========  ===  ==============  =========  ==============  ====================
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path

from ris.savings import CostModel
from ris.services import Services
from storage.origin import CLI
from tests.support.data import StudySpec, make_study, write

START, END = "2025-01-01", "2025-02-28"

MODEL = CostModel(max_sheets_per_study={"CT": 3}, cd_share=Decimal("0.2"),
                  storage_price_per_gb_month=Decimal(1_000_000),
                  storage_retention_months=12)
BYTE_COST = Decimal(1_000_000) * 12 / Decimal(10**9)  # storage cost of one byte


@dataclass
class Fixed:
    uids: dict[str, str] = field(default_factory=dict)
    sizes: dict[str, int] = field(default_factory=dict)
    files: dict[str, list[Path]] = field(default_factory=dict)


STUDIES = {
    "A": (StudySpec(patient_id="PA", modality="CT", series=2, instances=25,
                    study_date="20250110", referring="NGUYEN^AN"), "Radiology"),
    "C": (StudySpec(patient_id="PC", modality="CR", series=1, instances=2,
                    study_date="20250203", referring="TRAN^BINH"), "Emergency"),
    "D": (StudySpec(patient_id="PD", modality="CR", series=1, instances=1,
                    study_date="20250205", referring="NGUYEN^AN"), "Emergency"),
    "E": (StudySpec(patient_id="PE", modality="CT", series=1, instances=1,
                    study_date="20250301", referring="NGUYEN^AN"), "Radiology"),
}


def write_studies(directory: Path) -> Fixed:
    """The Part 10 files of the fixed studies (not yet archived)."""
    fixed = Fixed()
    for name, (spec, department) in STUDIES.items():
        paths = []
        for ds in make_study(spec):
            ds.InstitutionalDepartmentName = department
            ds.InstitutionName = "BENH VIEN TEST"
            paths.append(write(ds, directory / name))
        fixed.uids[name] = spec.study_uid
        fixed.files[name] = paths
        fixed.sizes[name] = sum(os.path.getsize(p) for p in paths)
    return fixed


def archive_studies(services: Services, directory: Path) -> Fixed:
    fixed = write_studies(directory)
    for paths in fixed.files.values():
        for path in paths:
            services.archive.store(path, CLI)
    return fixed


def storage_cost(fixed: Fixed, *names: str) -> int:
    return int((sum(fixed.sizes[n] for n in names) * BYTE_COST).quantize(Decimal(1)))


def expected_groups(fixed: Fixed) -> dict[str, dict[str, dict[str, int]]]:
    """Hand-computed figures per group (envelope 3,000, paper 1,000, CD 15,000 x 0.2)."""
    a = dict(studies=1, images=50, delivered_studies=0, printed_studies=0, printed_sheets=0,
             films_avoided=3, film_cost_avoided=120_000, envelope_cost_avoided=3_000,
             paper_cost_avoided=1_000, cd_cost_avoided=3_000, costs_avoided=127_000,
             printed_cost=0)
    c = dict(studies=1, images=2, delivered_studies=1, printed_studies=0, printed_sheets=0,
             films_avoided=2, film_cost_avoided=80_000, envelope_cost_avoided=3_000,
             paper_cost_avoided=1_000, cd_cost_avoided=3_000, costs_avoided=87_000,
             printed_cost=0)
    d = dict(studies=1, images=1, delivered_studies=0, printed_studies=1, printed_sheets=1,
             films_avoided=0, film_cost_avoided=0, envelope_cost_avoided=0,
             paper_cost_avoided=0, cd_cost_avoided=0, costs_avoided=0,
             printed_cost=43_000)

    def group(*members: tuple[str, dict[str, int]]) -> dict[str, int]:
        out = {k: sum(m[k] for _, m in members) for k in a}
        out["storage_bytes"] = sum(fixed.sizes[n] for n, _ in members)
        out["storage_cost"] = storage_cost(fixed, *(n for n, _ in members))
        out["net_savings"] = out["costs_avoided"] - out["storage_cost"]
        return out

    return {
        "modality": {"CT": group(("A", a)), "CR": group(("C", c), ("D", d))},
        "month": {"2025-01": group(("A", a)), "2025-02": group(("C", c), ("D", d))},
        "department": {"Radiology": group(("A", a)), "Emergency": group(("C", c), ("D", d))},
        "referring": {"NGUYEN AN": group(("A", a), ("D", d)), "TRAN BINH": group(("C", c))},
    }
