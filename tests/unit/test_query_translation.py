"""Matching keys → SQL: wildcards escaped, ranges bounded, UIDs validated (PS3.4 C.2.2.2)."""

from __future__ import annotations

import pytest
from sqlalchemy.dialects import sqlite

from storage.errors import InvalidQuery
from storage.index.query import ATTRS, Level, Query, build_select, constraint


def sql(keyword: str, value: str) -> str:
    clause = constraint(ATTRS[keyword], value)
    return "" if clause is None else str(clause.compile(
        dialect=sqlite.dialect(), compile_kwargs={"literal_binds": True}))


def test_universal_matching_adds_no_condition() -> None:
    assert sql("PatientID", "") == ""
    assert sql("PatientName", "*") == ""


def test_wildcards_become_like_with_escaped_literals_and_an_index_range() -> None:
    text = sql("PatientID", "A_1%*?")
    assert "LIKE 'A\\_1\\%%_' ESCAPE '\\'" in text
    assert "patients.patient_id >= 'A_1%'" in text and "< 'A_1&'" in text


def test_person_names_match_case_insensitively() -> None:
    assert "patient_name_norm = 'DOE^JANE'" in sql("PatientName", "doe^jane")
    assert "patient_name_norm LIKE 'DOE%'" in sql("PatientName", "Doe*")


def test_date_ranges() -> None:
    assert sql("StudyDate", "20250101-20250131") == (
        "studies.study_date >= '20250101' AND studies.study_date <= '20250131' "
        "AND studies.study_date != ''")
    assert sql("StudyDate", "-20250131").startswith("studies.study_date <= '20250131'")
    assert sql("StudyDate", "20250101-") == "studies.study_date >= '20250101'"
    with pytest.raises(InvalidQuery):
        sql("StudyDate", "2025-01-01")


def test_time_range_upper_bound_covers_the_whole_minute() -> None:
    assert "studies.study_time <= '120099.999999'" in sql("StudyTime", "1000-1200")


def test_uid_lists_and_malformed_uids() -> None:
    assert "IN ('1.2.3', '1.2.4')" in sql("StudyInstanceUID", "1.2.3\\1.2.4")
    with pytest.raises(InvalidQuery):
        sql("StudyInstanceUID", "1.02.3")


def test_modalities_in_study_matches_any_listed() -> None:
    text = sql("ModalitiesInStudy", "CT\\MR")
    assert "LIKE '%\\\\CT\\\\%'" in text and "LIKE '%\\\\MR\\\\%'" in text and " OR " in text


def test_keys_below_the_level_are_ignored_and_results_bounded() -> None:
    stmt = build_select(Query(Level.STUDY, {"SOPInstanceUID": "1.2.3"}, limit=5000), cap=100)
    text = str(stmt.compile(dialect=sqlite.dialect(), compile_kwargs={"literal_binds": True}))
    assert "WHERE" not in text  # PS3.4 C.2.2.1.3: keys the level cannot match are ignored
    assert "LIMIT 100" in text
