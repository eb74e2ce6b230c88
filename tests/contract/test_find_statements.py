"""Find statements reused across queries of one shape (storage.index.prepared), on both
databases: every query still gets its own answer, and warm-up leaves the common
study-level shapes ready."""

from __future__ import annotations

from datetime import date
from pathlib import Path

from ris.services import Services
from storage.index import prepared, results
from storage.index.query import Level, Query
from storage.origin import Origin
from tests.support.data import StudySpec, make_study, write

ORIGIN = Origin(channel="dimse", calling_ae="VIEWER", address="127.0.0.1:4000")
STUDIES = [
    StudySpec(patient_id="P1", patient_name="SMITH^LUCY", study_date="20250110",
              accession="A1", modality="CT", series=1, instances=1),
    StudySpec(patient_id="P2", patient_name="SMITH^LEO", study_date="20250120",
              accession="A2", modality="MR", series=1, instances=1),
    StudySpec(patient_id="P3", patient_name="SMYTHE^ANN", study_date="20250201",
              accession="A3", modality="CT", series=1, instances=1),
]


def _load(services: Services, tmp_path: Path) -> None:
    for spec in STUDIES:
        for ds in make_study(spec):
            services.archive.store(write(ds, tmp_path / "in"), ORIGIN)


def _accessions(services: Services, **filters: str) -> list[str]:
    query = Query(Level.STUDY, {**filters, "AccessionNumber": ""},
                  return_keys=[*filters, "AccessionNumber"])
    return sorted(str(m.to_dataset().AccessionNumber) for m in
                  services.archive.find(query, ORIGIN))


def test_queries_of_one_shape_each_get_their_own_answer(services: Services,
                                                        tmp_path: Path) -> None:
    _load(services, tmp_path)
    assert _accessions(services, PatientID="P1") == ["A1"]
    assert _accessions(services, PatientID="P3") == ["A3"]
    assert _accessions(services, PatientID="P9") == []
    assert _accessions(services, PatientName="SMITH^L*") == ["A1", "A2"]
    assert _accessions(services, PatientName="SMY*") == ["A3"]
    assert _accessions(services, StudyDate="20250101-20250131") == ["A1", "A2"]
    assert _accessions(services, StudyDate="20250115-20250228") == ["A2", "A3"]
    assert _accessions(services, StudyDate="20250201-") == ["A3"]
    assert _accessions(services, StudyDate="-20250110") == ["A1"]
    uids = [s.study_uid for s in STUDIES]
    # UID lists of different lengths share one statement (an expanding parameter)
    assert _accessions(services, StudyInstanceUID="\\".join(uids[:2])) == ["A1", "A2"]
    assert _accessions(services, StudyInstanceUID="\\".join(uids)) == ["A1", "A2", "A3"]
    assert _accessions(services, ModalitiesInStudy="MR") == ["A2"]
    assert _accessions(services, ModalitiesInStudy="CT") == ["A1", "A3"]


def test_one_statement_per_shape(services: Services) -> None:
    def statement(**filters: str) -> object:
        query = Query(Level.STUDY, filters, return_keys=list(filters))
        keys = results.response_keys(query.level, query.return_keys)
        return prepared.find_statement(query, keys, cap=100, columns_only=True)[0]

    assert statement(PatientID="P1") is statement(PatientID="P2")
    assert statement(StudyDate="20250101-20250131") is statement(StudyDate="20240101-20240105")
    # a different kind of matching is a different statement
    assert statement(PatientID="P1") is not statement(PatientID="P*")
    assert statement(StudyDate="20250101-") is not statement(StudyDate="20250101-20250131")


def test_warm_up_prepares_the_common_study_shapes(services: Services, tmp_path: Path) -> None:
    assert prepared.warm(services.db, cap=services.archive.find_limit,
                         today=date(2025, 2, 1)) == 4  # an empty index is fine too
    _load(services, tmp_path)
    assert prepared.warm(services.db, cap=services.archive.find_limit,
                         today=date(2025, 2, 1)) == 4
    keys = sorted(prepared.STUDY_RETURN_KEYS,
                  key=lambda k: prepared.tag_for_keyword(k) or 0)
    query = Query(Level.STUDY, {**dict.fromkeys(keys, ""), "StudyDate": "20250101-20250131"},
                  return_keys=keys)
    response_keys = results.response_keys(query.level, query.return_keys)
    before = len(prepared._cache)
    prepared.find_statement(query, response_keys, cap=services.archive.find_limit,
                            columns_only=True)
    assert len(prepared._cache) == before  # already there: built by the warm-up
    assert _accessions(services, StudyDate="20250101-20250131") == ["A1", "A2"]
