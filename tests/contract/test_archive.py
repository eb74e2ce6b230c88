"""The archive service on every index backend × every object-store backend."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest
from pydicom import dcmread

from ris.services import Services, build_services
from storage.archive import StoreOutcome
from storage.errors import DatasetDoesNotMatchSopClass, UnreadableDataset
from storage.index.query import Level, Query
from storage.origin import Origin
from tests.support.data import REAL_FILES, StudySpec, make_study, real_file, write

ORIGIN = Origin(channel="dimse", calling_ae="MODALITY", address="127.0.0.1:4000")


def _find(archive: Any, query: Query, origin: Any) -> list[Any]:
    """The matches as pydicom datasets, the way a DICOM peer would read them."""
    return [match.to_dataset() for match in archive.find(query, origin)]


def _store_study(services: Services, tmp_path: Path, spec: StudySpec) -> list[Path]:
    paths = [write(ds, tmp_path / "in") for ds in make_study(spec)]
    for p in paths:
        assert services.archive.store(p, ORIGIN).outcome is StoreOutcome.STORED
    return paths


def test_store_then_read_back_is_byte_identical(any_services: Services, tmp_path: Path) -> None:
    archive = any_services.archive
    for name in REAL_FILES:
        result = archive.store(real_file(name), ORIGIN)
        assert result.outcome is StoreOutcome.STORED, name
    refs = archive.locate(Query(Level.STUDY, {}), ORIGIN)
    assert len(refs) == len(REAL_FILES)
    originals = {dcmread(real_file(n)).SOPInstanceUID: real_file(n).read_bytes()
                 for n in REAL_FILES}
    for ref in refs:
        with archive.open(ref) as fh:
            assert fh.read() == originals[ref.sop_instance_uid]


def test_counters_and_study_keys(services: Services, tmp_path: Path) -> None:
    spec = StudySpec(series=2, instances=3, patient_name="Nguyễn^Văn An")
    _store_study(services, tmp_path, spec)
    (match,) = _find(services.archive, Query(Level.STUDY, {"PatientID": "P001"}, [
        "NumberOfStudyRelatedSeries", "NumberOfStudyRelatedInstances", "ModalitiesInStudy",
        "PatientName", "StudyDescription"]), ORIGIN)
    assert match.NumberOfStudyRelatedSeries == 2
    assert match.NumberOfStudyRelatedInstances == 6
    assert list(match.ModalitiesInStudy) == ["CT"] or match.ModalitiesInStudy == "CT"
    assert str(match.PatientName) == "Nguyễn^Văn An"
    assert match.SpecificCharacterSet == "ISO_IR 192"
    assert match.StudyInstanceUID == spec.study_uid
    (patient,) = _find(services.archive, Query(Level.PATIENT, {"PatientName": "nguyễn*"}, [
        "NumberOfPatientRelatedStudies", "NumberOfPatientRelatedInstances"]), ORIGIN)
    assert patient.NumberOfPatientRelatedStudies == 1
    assert patient.NumberOfPatientRelatedInstances == 6


def test_identical_resend_is_a_no_op(services: Services, tmp_path: Path) -> None:
    path = real_file("CT_small.dcm")
    assert services.archive.store(path, ORIGIN).outcome is StoreOutcome.STORED
    assert services.archive.store(path, ORIGIN).outcome is StoreOutcome.DUPLICATE
    assert services.archive.count()["instances"] == 1
    assert len(services.objects.keys()) == 1


def test_different_object_same_uid_becomes_a_revision(services: Services,
                                                      tmp_path: Path) -> None:
    ds = dcmread(real_file("CT_small.dcm"))
    first = write(ds, tmp_path / "a")
    ds.SeriesDescription = "corrected"
    second = write(ds, tmp_path / "b")
    archive = services.archive
    assert archive.store(first, ORIGIN).outcome is StoreOutcome.STORED
    assert archive.store(second, ORIGIN).outcome is StoreOutcome.REVISED
    assert archive.count()["instances"] == 1
    (ref,) = archive.locate(Query(Level.IMAGE, {"SOPInstanceUID": ds.SOPInstanceUID}), ORIGIN)
    assert archive.read_dataset(ref).SeriesDescription == "corrected"
    assert len(services.objects.keys()) == 2  # the earlier revision is kept, not discarded
    (study,) = _find(archive, Query(Level.STUDY, {}, ["NumberOfStudyRelatedInstances"]), ORIGIN)
    assert study.NumberOfStudyRelatedInstances == 1
    services.audit.flush()
    assert [e.outcome for e in services.audit.events(action="store")][:2] == [
        "revised", "stored"]


def test_resend_to_another_process(services: Services, tmp_path: Path) -> None:
    """A second process (no cached series keys) sees the same duplicate and revision,
    and a duplicate there creates no patient, study or series row."""
    ds = dcmread(real_file("CT_small.dcm"))
    first = write(ds, tmp_path / "a")
    assert services.archive.store(first, ORIGIN).outcome is StoreOutcome.STORED
    other = build_services(services.settings)
    try:
        assert other.archive.store(first, ORIGIN).outcome is StoreOutcome.DUPLICATE
        assert other.archive.count() == {"patients": 1, "studies": 1, "series": 1,
                                         "instances": 1}
        ds.SeriesDescription = "corrected"
        second = write(ds, tmp_path / "b")
        third = build_services(services.settings)
        try:
            assert third.archive.store(second, ORIGIN).outcome is StoreOutcome.REVISED
        finally:
            third.close()
        # The first process's cached keys still hold: its re-send is a duplicate too.
        assert services.archive.store(second, ORIGIN).outcome is StoreOutcome.DUPLICATE
        assert other.archive.count()["instances"] == 1
    finally:
        other.close()


@pytest.mark.parametrize("mutate, error", [
    (lambda ds: delattr(ds, "StudyInstanceUID"), DatasetDoesNotMatchSopClass),
    (lambda ds: setattr(ds, "SeriesInstanceUID", "1.02.3"), DatasetDoesNotMatchSopClass),
    (lambda ds: setattr(ds, "SOPInstanceUID", "abc"), DatasetDoesNotMatchSopClass),
])
def test_bad_uids_store_nothing(sqlite_services: Services, tmp_path: Path, mutate, error) -> None:  # type: ignore[no-untyped-def]
    ds = dcmread(real_file("CT_small.dcm"))
    mutate(ds)
    path = tmp_path / "bad.dcm"
    ds.save_as(path)
    with pytest.raises(error):
        sqlite_services.archive.store(path, ORIGIN)
    assert sqlite_services.archive.count()["instances"] == 0
    assert sqlite_services.objects.keys() == []


def test_unreadable_bytes_store_nothing(sqlite_services: Services, tmp_path: Path) -> None:
    path = tmp_path / "junk.dcm"
    path.write_bytes(b"\0" * 128 + b"DICM" + b"\xff" * 40)
    with pytest.raises(UnreadableDataset):
        sqlite_services.archive.store(path, ORIGIN)
    assert sqlite_services.objects.keys() == []


def test_request_uid_must_match_dataset(sqlite_services: Services) -> None:
    with pytest.raises(DatasetDoesNotMatchSopClass):
        sqlite_services.archive.store(real_file("CT_small.dcm"), ORIGIN,
                                      sop_instance_uid="1.2.3.4")
    assert sqlite_services.objects.keys() == []


def test_concurrent_stores_into_one_study(services: Services, tmp_path: Path) -> None:
    """Twenty writers creating the same patient, study and series at once lose nothing."""
    spec = StudySpec(series=1, instances=40)
    paths = [write(ds, tmp_path / "in") for ds in make_study(spec)]
    # Same study and series for everyone: rewrite series UIDs to one value.
    errors: list[BaseException] = []

    def worker(chunk: list[Path]) -> None:
        try:
            for p in chunk:
                services.archive.store(p, ORIGIN)
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(paths[i::20],)) for i in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert services.archive.count() == {"patients": 1, "studies": 1, "series": 1,
                                        "instances": 40}
    (study,) = _find(services.archive, Query(Level.STUDY, {}, [
        "NumberOfStudyRelatedInstances", "NumberOfStudyRelatedSeries"]), ORIGIN)
    assert study.NumberOfStudyRelatedInstances == 40
    assert study.NumberOfStudyRelatedSeries == 1


def test_store_is_audited(services: Services) -> None:
    services.archive.store(real_file("CT_small.dcm"), ORIGIN)
    services.audit.flush()
    (event,) = services.audit.events(action="store")
    assert (event.outcome, event.calling_ae, event.address, event.channel) == (
        "stored", "MODALITY", "127.0.0.1:4000", "dimse")
    assert event.study_uid == dcmread(real_file("CT_small.dcm")).StudyInstanceUID


def test_locate_instance_answers_as_locate_does(any_services: Services, tmp_path: Path) -> None:
    archive = any_services.archive
    spec = StudySpec(series=2, instances=2)
    datasets = make_study(spec)
    for ds in datasets:
        archive.store(write(ds, tmp_path / "in"), ORIGIN)
    for ds in datasets:
        uids = (ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SOPInstanceUID)
        (expected,) = archive.locate(Query(Level.IMAGE, dict(zip(
            ("StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID"), uids, strict=True))),
            ORIGIN)
        assert archive.locate_instance(*uids, ORIGIN, action="render") == expected
    first, other_series = datasets[0], datasets[-1]
    assert first.SeriesInstanceUID != other_series.SeriesInstanceUID
    # each UID must match, not only the SOP Instance UID
    assert archive.locate_instance(first.StudyInstanceUID, other_series.SeriesInstanceUID,
                                   first.SOPInstanceUID, ORIGIN) is None
    assert archive.locate_instance("1.2.3.4", first.SeriesInstanceUID,
                                   first.SOPInstanceUID, ORIGIN) is None
    assert archive.locate_instance(first.StudyInstanceUID, first.SeriesInstanceUID,
                                   "1.2.3.4", ORIGIN) is None
    # a new revision is found under its new object key
    before = archive.locate_instance(first.StudyInstanceUID, first.SeriesInstanceUID,
                                     first.SOPInstanceUID, ORIGIN)
    first.SeriesDescription = "corrected"
    assert archive.store(write(first, tmp_path / "rev"), ORIGIN).outcome is StoreOutcome.REVISED
    after = archive.locate_instance(first.StudyInstanceUID, first.SeriesInstanceUID,
                                    first.SOPInstanceUID, ORIGIN)
    assert before is not None and after is not None
    assert after.object_key != before.object_key
    any_services.audit.flush()
    events = any_services.audit.events(action="render")
    assert len(events) == len(datasets)
    assert all(e.patient_id == spec.patient_id and e.study_uid == spec.study_uid
               for e in events)
