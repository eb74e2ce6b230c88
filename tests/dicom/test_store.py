"""Storage SCP over real associations (PS3.4 B; SPEC "DICOM services", "Behaviour").

Status 0x0000 only once the object is durable and indexed; bad input gets 0xA900 / 0xC000
and changes nothing; an unavailable object store gets 0xA700 and changes nothing; the
listener survives every failure.
"""

from __future__ import annotations

import itertools
import re
import threading
import time
import uuid
import warnings
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from pydicom import dcmread
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, MRImageStorage, generate_uid

from storage.index.query import Level, Query
from tests.dicom import scu
from tests.support.data import REAL_FILES, StudySpec, make_instance, make_study

EMPTY = {"patients": 0, "studies": 0, "series": 0, "instances": 0}


def crafted(directory: Path, name: str, body: bytes, *, sop_instance: str,
            sop_class: str = CTImageStorage) -> Path:
    path = directory / name
    path.write_bytes(scu.part10(body, sop_class, sop_instance, ExplicitVRLittleEndian))
    return path


def assert_unchanged_and_alive(listener: Any, before: dict[str, int]) -> None:
    assert listener.services.archive.count() == before, "a refused C-STORE changed the index"
    assert scu.echo(listener) == 0x0000, "the listener no longer answers C-ECHO"


# -- success paths ---------------------------------------------------------------------

def test_real_vendor_files_are_stored_byte_for_byte(listener: Any, tmp_path: Path) -> None:
    paths = [scu.vendor_copy(name, tmp_path) for name in REAL_FILES]
    statuses = scu.store_files(listener, paths)
    assert {p.name: f"0x{s:04X}" for p, s in zip(paths, statuses, strict=True)} == \
        {p.name: "0x0000" for p in paths}

    problems = []
    uids = set()
    for path in paths:
        original = dcmread(path)
        uid = str(original.SOPInstanceUID)
        uids.add(uid)
        objects = scu.stored_objects(listener.services, uid)
        if len(objects) != 1:
            problems.append(f"{path.name}: {len(objects)} archived objects")
            continue
        meta, body = scu.split_part10(objects[0])
        _, sent = scu.split_part10(path.read_bytes())
        if meta.get("TransferSyntaxUID") != original.file_meta.TransferSyntaxUID:
            problems.append(f"{path.name}: stored as {meta.get('TransferSyntaxUID')}, sent as "
                            f"{original.file_meta.TransferSyntaxUID}")
        if body != sent:
            problems.append(f"{path.name}: dataset bytes differ ({len(body)} vs {len(sent)})")
        stored = scu.read_bytes(objects[0])
        if stored.SOPInstanceUID != uid:
            problems.append(f"{path.name}: stored SOP Instance UID {stored.SOPInstanceUID}")
        if "PixelData" in original and stored.get("PixelData") != original.PixelData:
            problems.append(f"{path.name}: pixel data differs")
    assert problems == []
    assert listener.services.archive.count()["instances"] == len(uids)


def test_identical_resend_is_success_and_adds_nothing(listener: Any) -> None:
    study = make_study(StudySpec(series=1, instances=3))
    assert scu.store_datasets(listener, study) == [0x0000] * 3
    before = listener.services.archive.count()
    assert before == {"patients": 1, "studies": 1, "series": 1, "instances": 3}

    assert scu.store_datasets(listener, study) == [0x0000] * 3
    assert listener.services.archive.count() == before
    for ds in study:
        assert len(scu.stored_objects(listener.services, ds.SOPInstanceUID)) == 1


def test_different_dataset_under_same_uid_is_a_new_revision(listener: Any) -> None:
    spec = StudySpec(series=1, instances=1, description="CHEST")
    first = make_study(spec)[0]
    assert scu.store_datasets(listener, [first]) == [0x0000]
    before = listener.services.archive.count()

    second = make_instance(spec, first.SeriesInstanceUID, 1, 7, sop_uid=first.SOPInstanceUID)
    second.StudyDescription = "CHEST REVISED"
    assert second.PixelData != first.PixelData
    assert scu.store_datasets(listener, [second]) == [0x0000]

    assert listener.services.archive.count() == before
    objects = scu.stored_objects(listener.services, first.SOPInstanceUID)
    assert len(objects) == 1
    stored = scu.read_bytes(objects[0])
    assert stored.StudyDescription == "CHEST REVISED"
    assert stored.InstanceNumber == 7
    assert stored.PixelData == second.PixelData

    listener.services.audit.flush()
    revised = [e for e in listener.services.audit.events(action="store")
               if e.outcome == "revised" and first.SOPInstanceUID in (e.detail or "")]
    assert len(revised) == 1


# -- refused input (a shared listener: each case checks the archive is unchanged) ----------

class Refusal:
    """After one bad C-STORE to the shared listener, everything that matters in one
    comparable outcome: the status, whether the index changed, whether an object can be
    found under the UIDs involved, and whether the listener still answers C-ECHO."""

    def __init__(self, listener: Any) -> None:
        self.listener = listener
        self.before = listener.services.archive.count()

    def outcome(self, statuses: list[int], *uids: str) -> dict[str, Any]:
        services = self.listener.services
        return {
            "status": [f"0x{s:04X}" for s in statuses],
            "index unchanged": services.archive.count() == self.before,
            "archived objects": {uid: len(scu.stored_objects(services, uid)) for uid in uids},
            "C-ECHO afterwards": f"0x{scu.echo(self.listener):04X}",
        }

    @staticmethod
    def expected(status: str, *uids: str) -> dict[str, Any]:
        return {"status": [status], "index unchanged": True,
                "archived objects": dict.fromkeys(uids, 0), "C-ECHO afterwards": "0x0000"}


@pytest.fixture
def refusal(module_sqlite_listener: Any) -> Refusal:
    return Refusal(module_sqlite_listener)


def test_missing_study_instance_uid_is_refused(refusal: Refusal) -> None:
    ds = make_study(StudySpec(series=1, instances=1))[0]
    del ds.StudyInstanceUID
    uid = str(ds.SOPInstanceUID)
    statuses = scu.store_datasets(refusal.listener, [ds])
    assert refusal.outcome(statuses, uid) == refusal.expected("0xA900", uid)


# The listener's parser warns about the deliberately bad values.
@pytest.mark.filterwarnings("ignore::UserWarning")
@pytest.mark.parametrize(("keyword", "value"), [
    ("SOPInstanceUID", "1.02.3"),      # leading zero in a component (PS3.5 9.1)
    ("SOPInstanceUID", "abc"),
    ("StudyInstanceUID", "1.02.3"),
    ("StudyInstanceUID", "abc"),
    ("SeriesInstanceUID", "1.2.3."),   # empty last component
    ("SeriesInstanceUID", "1." + "2" * 70),  # longer than 64 characters
])
def test_malformed_uid_is_refused(refusal: Refusal, tmp_path: Path, keyword: str,
                                  value: str) -> None:
    ds = make_study(StudySpec(series=1, instances=1))[0]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pydicom warns about the invalid UI value
        setattr(ds, keyword, value)
    uid = str(ds.SOPInstanceUID)
    path = crafted(tmp_path, "bad-uid.dcm", scu.encode_explicit_le(ds), sop_instance=uid)
    statuses = scu.store_files(refusal.listener, [path])
    assert refusal.outcome(statuses) == refusal.expected("0xA900")


def test_affected_sop_instance_uid_differing_from_dataset_is_refused(
        refusal: Refusal, tmp_path: Path) -> None:
    ds = make_study(StudySpec(series=1, instances=1))[0]
    announced, actual = generate_uid(), str(ds.SOPInstanceUID)
    path = crafted(tmp_path, "mismatch.dcm", scu.encode_explicit_le(ds), sop_instance=announced)
    statuses = scu.store_files(refusal.listener, [path])
    assert refusal.outcome(statuses, announced, actual) == \
        refusal.expected("0xA900", announced, actual)


def test_affected_sop_class_uid_differing_from_dataset_is_refused(
        refusal: Refusal, tmp_path: Path) -> None:
    ds = make_study(StudySpec(series=1, instances=1))[0]  # a CT image, announced as MR
    uid = str(ds.SOPInstanceUID)
    path = crafted(tmp_path, "class.dcm", scu.encode_explicit_le(ds), sop_instance=uid,
                   sop_class=MRImageStorage)
    statuses = scu.store_files(refusal.listener, [path])
    outcome = refusal.outcome(statuses, uid)
    assert 0xA900 <= statuses[0] <= 0xA9FF, outcome  # Data Set does not match SOP Class
    assert outcome == refusal.expected(outcome["status"][0], uid)


def _garbage(kind: str) -> tuple[bytes, str]:
    """``(dataset bytes, SOP Instance UID announced in the command)``."""
    if kind == "text":
        return b"this is not a DICOM data set, just some text " * 8, generate_uid()
    if kind == "binary":
        return bytes(range(256)) * 4, generate_uid()
    if kind == "ff":
        return b"\xff" * 300, generate_uid()
    # A real dataset cut short in the middle of its Pixel Data value: the declared value
    # length runs 40 bytes past the end of the data set.
    ds = make_study(StudySpec(series=1, instances=1))[0]
    return scu.encode_explicit_le(ds)[:-40], str(ds.SOPInstanceUID)


@pytest.mark.filterwarnings("ignore::UserWarning")
@pytest.mark.parametrize("kind", ["text", "binary", "ff", "truncated"])
def test_unreadable_dataset_is_refused_with_cannot_understand(
        refusal: Refusal, tmp_path: Path, kind: str) -> None:
    body, uid = _garbage(kind)
    path = crafted(tmp_path, f"{kind}.dcm", body, sop_instance=uid)
    statuses = scu.store_files(refusal.listener, [path])
    assert refusal.outcome(statuses, uid) == refusal.expected("0xC000", uid)


def test_unavailable_object_storage_is_out_of_resources_then_recovers(
        sqlite_listener: Any) -> None:
    root = Path(sqlite_listener.services.objects.root)
    ds = make_study(StudySpec(series=1, instances=1))[0]
    aside = root.with_name(root.name + ".aside")
    root.rename(aside)
    root.write_bytes(b"not a directory")  # the objects directory is now a regular file
    try:
        assert scu.store_datasets(sqlite_listener, [ds]) == [0xA700]
        assert_unchanged_and_alive(sqlite_listener, EMPTY)
    finally:
        root.unlink()
        aside.rename(root)
    assert scu.store_datasets(sqlite_listener, [ds]) == [0x0000]
    assert sqlite_listener.services.archive.count() == {
        "patients": 1, "studies": 1, "series": 1, "instances": 1}
    objects = scu.stored_objects(sqlite_listener.services, ds.SOPInstanceUID)
    assert len(objects) == 1
    assert scu.read_bytes(objects[0]).PixelData == ds.PixelData


def test_objects_are_kept_below_the_utc_day_they_arrived(sqlite_listener: Any) -> None:
    """Object keys are opaque (no UID, no patient data) and grouped by the UTC day of
    receipt, ``YYYY/MM/DD/ab/<32 hex>.dcm``, with the file at that path."""
    datasets = make_study(StudySpec(series=1, instances=3))
    before = datetime.now(UTC).date()
    assert scu.store_datasets(sqlite_listener, datasets) == [0x0000] * 3
    after = datetime.now(UTC).date()
    root = Path(sqlite_listener.services.objects.root)
    for ds in datasets:
        (ref,) = sqlite_listener.services.archive.locate(
            Query(Level.IMAGE, {"SOPInstanceUID": ds.SOPInstanceUID}), scu.ARCHIVE_READER)
        match = re.fullmatch(r"(\d{4}/\d{2}/\d{2})/([0-9a-f]{2})/\2[0-9a-f]{30}\.dcm",
                             ref.object_key)
        assert match, ref.object_key
        day = datetime.strptime(match[1], "%Y/%m/%d").date()
        assert before <= day <= after
        assert dcmread(root / ref.object_key).SOPInstanceUID == ds.SOPInstanceUID


def _empty_directories_in(parent: Path) -> set[Path]:
    if not parent.is_dir():  # the first store may have used a key prepared earlier
        return set()
    return {d for d in parent.iterdir() if not any(d.iterdir())}


def test_the_next_objects_directories_are_made_ahead(
        sqlite_listener: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """While an instance is stored, the directories of the next object are made
    (durably, in a helper thread), so that object goes into directories that exist
    before its instance arrives."""
    root = Path(sqlite_listener.services.objects.root)
    # Every key in a directory of its own, so the next key's directory is always new.
    keys = (f"made-ahead/{uuid.uuid4().hex}/{n}.dcm" for n in itertools.count())
    monkeypatch.setattr("storage.archive.new_object_key", lambda: next(keys))
    first, second = make_study(StudySpec(series=1, instances=2))
    assert scu.store_datasets(sqlite_listener, [first]) == [0x0000]
    deadline = time.monotonic() + 5
    while not (made_ahead := _empty_directories_in(root / "made-ahead")):
        assert time.monotonic() < deadline, "no directory made ahead for the next object"
        time.sleep(0.01)
    assert scu.store_datasets(sqlite_listener, [second]) == [0x0000]
    (ref,) = sqlite_listener.services.archive.locate(
        Query(Level.IMAGE, {"SOPInstanceUID": second.SOPInstanceUID}), scu.ARCHIVE_READER)
    assert (root / ref.object_key).parent in made_ahead
    assert scu.read_bytes(scu.stored_objects(sqlite_listener.services,
                                             second.SOPInstanceUID)[0]).PixelData \
        == second.PixelData


def test_nothing_is_made_ahead_where_the_directories_exist(
        sqlite_listener: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """Once a day's directories exist (past its first objects), a store hands no
    directory work to the helper threads."""
    store = sqlite_listener.services.objects
    keys = (f"ab/cd/{n}.dcm" for n in range(100))  # every key in one directory
    monkeypatch.setattr("storage.archive.new_object_key", lambda: next(keys))
    prepared: list[str] = []
    real_prepare = store.prepare
    monkeypatch.setattr(sqlite_listener.services.archive, "_prepare",
                        lambda key: (prepared.append(key), real_prepare(key))[1])
    datasets = make_study(StudySpec(series=1, instances=4))
    assert scu.store_datasets(sqlite_listener, datasets) == [0x0000] * 4
    assert len(prepared) <= 1  # at most the first following key, before ab/cd existed
    for ds in datasets:
        assert scu.read_bytes(scu.stored_objects(sqlite_listener.services,
                                                 ds.SOPInstanceUID)[0]).PixelData \
            == ds.PixelData


# -- concurrency -----------------------------------------------------------------------

def test_concurrent_associations_all_succeed_with_exact_counts(listener: Any) -> None:
    associations, patients = 20, 5
    studies = [make_study(StudySpec(patient_id=f"PAT{i % patients}",
                                    patient_name=f"CONCURRENT^{i % patients}",
                                    accession=f"ACC{i}", series=2, instances=2))
               for i in range(associations)]
    barrier = threading.Barrier(associations)
    results: dict[int, Any] = {}

    def worker(i: int) -> None:
        try:
            barrier.wait(timeout=30)
            results[i] = scu.store_datasets(listener, studies[i], ae_title=f"MOD{i}")
        except BaseException as exc:  # reported below
            results[i] = exc

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(associations)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert {i: results.get(i) for i in range(associations)} == \
        {i: [0x0000] * 4 for i in range(associations)}
    assert listener.services.archive.count() == {
        "patients": patients, "studies": associations, "series": 2 * associations,
        "instances": 4 * associations}

    # The per-patient counters kept by the index agree with what was stored.
    found = scu.find(listener, scu.query("PATIENT", PatientID="", PatientName="",
                                         NumberOfPatientRelatedStudies="",
                                         NumberOfPatientRelatedSeries="",
                                         NumberOfPatientRelatedInstances=""),
                     model="patient")
    assert found.final == 0x0000
    per_patient = associations // patients
    assert sorted((m.PatientID, int(m.NumberOfPatientRelatedStudies),
                   int(m.NumberOfPatientRelatedSeries),
                   int(m.NumberOfPatientRelatedInstances)) for m in found.matches) == \
        [(f"PAT{p}", per_patient, 2 * per_patient, 4 * per_patient) for p in range(patients)]
