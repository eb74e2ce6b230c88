"""The small archive that query tests (pynetdicom and DCMTK) search: four patients, five
studies, seven series, twelve instances, with names, IDs and accession numbers chosen to
tell wildcards from literal ``%`` / ``_`` and to exercise date ranges."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

from pydicom.dataset import Dataset
from pydicom.uid import generate_uid

from tests.support.data import StudySpec, make_instance


@dataclass
class Catalog:
    """What the module stored: labels → UIDs, and the SOP Instance UIDs per series."""

    listener: Any
    studies: dict[str, str] = field(default_factory=dict)
    series: dict[str, str] = field(default_factory=dict)
    instances: dict[str, list[str]] = field(default_factory=dict)  # series label → SOPs

    def sops(self, *series_labels: str) -> set[str]:
        return {uid for label in series_labels for uid in self.instances[label]}

    def all_sops(self) -> set[str]:
        return self.sops(*self.instances)


PATIENTS = {
    "P1": dict(patient_id="PID001", patient_name="DOE^JANE", birth_date="19700101", sex="F"),
    "P2": dict(patient_id="PID002", patient_name="DOE^JOHN", birth_date="19800202", sex="M"),
    "P3": dict(patient_id="PCT%1", patient_name="Smith^Anna", birth_date="19900505", sex="F"),
    "P4": dict(patient_id="PCTX1", patient_name="SMITHSON^BOB", birth_date="20000101",
               sex="M"),
}
# study label → (patient, date, time, accession, description, [(series label, modality, n)])
STUDIES: dict[str, tuple[str, str, str, str, str, list[tuple[str, str, int]]]] = {
    "S1": ("P1", "20250115", "101500", "ACC001", "CHEST", [("S1a", "CT", 2), ("S1b", "CT", 2)]),
    "S2": ("P1", "20250131", "083000", "ACC002", "HEAD", [("S2a", "MR", 3)]),
    "S3": ("P2", "20241231", "231500", "ACC003", "ABDOMEN",
           [("S3ct", "CT", 1), ("S3mr", "MR", 2)]),
    "S4": ("P3", "20250210", "120000", "ACC_004", "KNEE", [("S4a", "CT", 1)]),
    "S5": ("P4", "20250301", "090000", "ACCX004", "KNEE", [("S5a", "CT", 1)]),
}


def build() -> tuple[list[Dataset], Catalog]:
    catalog = Catalog(listener=None)
    datasets: list[Dataset] = []
    for study_label, (patient, date, time, accession, description, series) in STUDIES.items():
        spec = StudySpec(**PATIENTS[patient], study_date=date, study_time=time,
                         accession=accession, description=description)
        catalog.studies[study_label] = spec.study_uid
        for number, (series_label, modality, count) in enumerate(series, start=1):
            series_uid = generate_uid()
            catalog.series[series_label] = series_uid
            catalog.instances[series_label] = []
            for i in range(1, count + 1):
                ds = make_instance(replace(spec, modality=modality), series_uid, number, i)
                if series_label == "S1a":
                    ds.Manufacturer = "ACME"  # a return key only found in the stored header
                datasets.append(ds)
                catalog.instances[series_label].append(str(ds.SOPInstanceUID))
    return datasets, catalog
