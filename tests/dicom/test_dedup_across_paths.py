"""The same instance received two ways is one archived object (bench/RESULTS.md
"Server problems" item 4; SPEC "an identical re-send is a no-op success").

A C-STORE receiver writes its own File Meta group in front of the data set; the
modality's original Part 10 file (imported with ``pacs import``) has another (its
Implementation Class UID, Source AE Title). The data set and transfer syntax are the
same, so the second arrival is "already archived", not a new revision. A changed data set,
or the same one in another transfer syntax, is still a new revision.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from pydicom import dcmread
from pydicom.dataset import Dataset
from pydicom.uid import ImplicitVRLittleEndian
from sqlalchemy import func, select

from storage.index.models import Revision
from storage.index.query import Level, Query
from tests.cli.helpers import clean_env, describe, run_pacs
from tests.dicom import scu
from tests.support.data import StudySpec, make_study

ONE_DUPLICATE = "1 files: 0 stored, 0 new revisions, 1 already archived, 0 skipped"
ONE_STORED = "1 files: 1 stored, 0 new revisions, 0 already archived, 0 skipped"


class Paths:
    """One archive reached two ways: the listener (C-STORE) and ``pacs import`` (CLI),
    on the same index and object store."""

    def __init__(self, listener: Any, database_url: str,
                 storage_target: tuple[str, str | None], tmp_path: Path) -> None:
        self.listener = listener
        self.tmp_path = tmp_path
        storage_url, endpoint = storage_target
        settings = dict(PACS_DATA_DIR=str(tmp_path / "pacs-data"),
                        PACS_DATABASE_URL=database_url, PACS_STORAGE_URL=storage_url)
        if endpoint:
            settings["PACS_S3_ENDPOINT_URL"] = endpoint
        self.env = clean_env(**settings)

    def c_store(self, path: Path) -> int:
        """C-STORE the file's data set bytes as they are (pynetdicom, chunked send)."""
        return scu.store_files(self.listener, [path], ae_title="MODALITY")[0]

    def pacs_import(self, path: Path) -> str:
        """``pacs import`` of the file; its one-line summary."""
        result = run_pacs("import", "--quiet", path, cwd=self.tmp_path, env=self.env)
        assert result.returncode == 0, describe(result)
        return result.stdout.splitlines()[0]

    def revisions(self) -> int:
        with self.listener.services.db.read() as s:
            return int(s.scalar(select(func.count(Revision.id))) or 0)

    def stored(self, uid: str) -> bytes:
        objects = scu.stored_objects(self.listener.services, uid)
        assert len(objects) == 1
        return objects[0]

    def store_outcomes(self, uid: str) -> list[str]:
        """Outcomes of the audited stores of ``uid``, oldest first."""
        self.listener.services.audit.flush()
        return [e.outcome for e in reversed(self.listener.services.audit.events(action="store"))
                if uid in (e.detail or "")]


@pytest.fixture
def paths(any_listener: Any, database_url: str, storage_target: tuple[str, str | None],
          tmp_path: Path) -> Paths:
    return Paths(any_listener, database_url, storage_target, tmp_path)


def modality_file(ds: Dataset, directory: Path, name: str = "original.dcm") -> Path:
    """``ds`` as the modality's Part 10 file: a File Meta group no receiver writes."""
    ds.file_meta.SourceApplicationEntityTitle = "MODALITY"
    ds.file_meta.ImplementationVersionName = "MODALITY_1"
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / name
    ds.save_as(path, enforce_file_format=True)
    return path


@pytest.fixture
def original(tmp_path: Path) -> Path:
    return modality_file(make_study(StudySpec(series=1, instances=1))[0], tmp_path / "mod")


def test_c_store_then_import_of_the_original_is_already_archived(
        paths: Paths, original: Path) -> None:
    uid = str(dcmread(original, stop_before_pixels=True).SOPInstanceUID)
    assert paths.c_store(original) == 0x0000
    received = paths.stored(uid)
    meta, body = scu.split_part10(received)
    assert received != original.read_bytes()  # only the File Meta group differs
    assert body == scu.split_part10(original.read_bytes())[1]

    assert paths.pacs_import(original) == ONE_DUPLICATE
    assert paths.revisions() == 0
    assert paths.stored(uid) == received  # the first object stays, untouched
    assert paths.listener.services.archive.count()["instances"] == 1
    assert paths.store_outcomes(uid) == ["stored", "duplicate"]


def test_import_then_c_store_of_the_same_instance_is_a_no_op_success(
        paths: Paths, original: Path) -> None:
    uid = str(dcmread(original, stop_before_pixels=True).SOPInstanceUID)
    assert paths.pacs_import(original) == ONE_STORED

    assert paths.c_store(original) == 0x0000
    assert paths.revisions() == 0
    assert paths.stored(uid) == original.read_bytes()
    assert paths.listener.services.archive.count()["instances"] == 1
    assert paths.store_outcomes(uid) == ["stored", "duplicate"]


def test_a_changed_data_set_is_still_a_new_revision(paths: Paths, tmp_path: Path) -> None:
    ds = make_study(StudySpec(series=1, instances=1))[0]
    first = modality_file(ds, tmp_path / "mod")
    assert paths.c_store(first) == 0x0000

    ds.StudyDescription = "CHEST REVISED"  # same length as before or not: a new data set
    changed = modality_file(ds, tmp_path / "mod", "changed.dcm")
    assert paths.c_store(changed) == 0x0000  # the same decision as an import makes
    assert paths.revisions() == 1
    assert dcmread(changed).StudyDescription == \
        scu.read_bytes(paths.stored(str(ds.SOPInstanceUID))).StudyDescription


def test_the_same_data_set_in_another_transfer_syntax_is_a_new_revision(
        paths: Paths, tmp_path: Path, original: Path) -> None:
    """PS3.5 10: the transfer syntax is part of the encoded object; like dcm4chee-arc
    (whose digest covers the encoded data set) another encoding is another object."""
    assert paths.c_store(original) == 0x0000
    ds = dcmread(original)
    ds.file_meta.TransferSyntaxUID = ImplicitVRLittleEndian
    implicit = modality_file(ds, tmp_path / "mod", "implicit.dcm")
    assert paths.c_store(implicit) == 0x0000  # sent and stored in Implicit VR
    assert paths.revisions() == 1


def test_an_archived_object_that_cannot_be_read_leaves_the_newcomer_as_a_revision(
        paths: Paths, original: Path) -> None:
    """The comparison never fails a store: with the archived object gone (a damaged
    store, ``pacs verify`` territory) the received one is kept, as a new revision."""
    uid = str(dcmread(original, stop_before_pixels=True).SOPInstanceUID)
    assert paths.pacs_import(original) == ONE_STORED
    services = paths.listener.services
    [ref] = services.archive.locate(Query(Level.IMAGE, {"SOPInstanceUID": uid}),
                                    scu.ARCHIVE_READER)
    services.objects.delete(ref.object_key)

    assert paths.c_store(original) == 0x0000
    assert paths.revisions() == 1
    assert scu.split_part10(paths.stored(uid))[1] == scu.split_part10(original.read_bytes())[1]
