"""DCMTK command-line tools as real peers: echoscu, storescu, findscu, movescu (to a DCMTK
storescp), getscu. They skip, or fail with PACS_TEST_REQUIRE_DCMTK=1, without DCMTK."""

from __future__ import annotations

import contextlib
import itertools
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pydicom import dcmread
from pydicom.dataset import Dataset
from pydicom.uid import UID

from tests.dicom import scu
from tests.dicom.catalog import Catalog, build
from tests.support.data import REAL_FILES, StudySpec, make_study, write
from tests.support.dcmtk import require, run
from tests.support.net import free_port

pytestmark = pytest.mark.dcmtk

JPEG_FILE = "SC_rgb_jpeg_dcmtk.dcm"
_titles = itertools.count(1)


def peer(listener: Any) -> list[str]:
    return ["-aec", listener.ae_title, listener.host, str(listener.port)]


def ok(result: subprocess.CompletedProcess[str]) -> subprocess.CompletedProcess[str]:
    assert result.returncode == 0, f"rc={result.returncode}\n{result.stdout}\n{result.stderr}"
    return result


def read_dir(directory: Path) -> list[Dataset]:
    return [dcmread(p) for p in sorted(directory.iterdir()) if p.is_file()]


# -- storescu (function-scoped listeners: these change the archive) -----------------------

def test_storescu_folder_of_generated_files(sqlite_listener: Any, tmp_path: Path) -> None:
    study = make_study(StudySpec(series=2, instances=3))
    for ds in study:
        write(ds, tmp_path / "in")
    ok(run("storescu", "+sd", *peer(sqlite_listener), str(tmp_path / "in")))
    assert sqlite_listener.services.archive.count() == {
        "patients": 1, "studies": 1, "series": 2, "instances": 6}
    for ds in study:
        assert len(scu.stored_objects(sqlite_listener.services, ds.SOPInstanceUID)) == 1


# storescu proposes uncompressed syntaxes unless told which compressed one to propose.
_PROPOSE = {
    "1.2.840.10008.1.2.1.99": "-xd", "1.2.840.10008.1.2.4.50": "-xy",
    "1.2.840.10008.1.2.4.51": "-xx", "1.2.840.10008.1.2.4.70": "-xs",
    "1.2.840.10008.1.2.4.80": "-xt", "1.2.840.10008.1.2.4.81": "-xu",
    "1.2.840.10008.1.2.4.90": "-xv", "1.2.840.10008.1.2.4.91": "-xw",
    "1.2.840.10008.1.2.5": "-xr",
}


def test_storescu_folder_of_real_files(sqlite_listener: Any, tmp_path: Path) -> None:
    groups: dict[str, list[tuple[Path, Dataset]]] = {}
    everything = _mkdir(tmp_path / "all")
    for name in REAL_FILES:
        path = scu.vendor_copy(name, everything)
        if not _dcmtk_reads_sop_class(path):
            continue  # e.g. a file encoded against its own transfer syntax
        ds = dcmread(path)
        ts = UID(ds.file_meta.TransferSyntaxUID)
        groups.setdefault(_PROPOSE.get(ts, "-x="), []).append((path, ds))
    assert groups
    sent: dict[str, Dataset] = {}
    for option, files in groups.items():
        folder = _mkdir(tmp_path / option.strip("-="))
        for path, ds in files:
            path.rename(folder / path.name)
            sent[str(ds.SOPInstanceUID)] = ds
        ok(run("storescu", option, "-R", "+sd", *peer(sqlite_listener), str(folder)))
    assert sqlite_listener.services.archive.count()["instances"] == len(sent)
    for uid, ds in sent.items():
        [data] = scu.stored_objects(sqlite_listener.services, uid)
        stored = scu.read_bytes(data)
        assert stored.SOPInstanceUID == uid
        ts = ds.file_meta.TransferSyntaxUID
        if UID(ts).is_compressed:
            assert stored.file_meta.TransferSyntaxUID == ts
            assert stored.PixelData == ds.PixelData


def _dcmtk_reads_sop_class(path: Path) -> bool:
    dump = run("dcmdump", "-q", "+P", "0008,0016", str(path))
    return dump.returncode == 0 and " UI " in dump.stdout


def _mkdir(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    return path


# -- findscu, movescu, getscu (one populated archive per backend) ------------------------------

@pytest.fixture(scope="module")
def catalog(module_listener: Any, tmp_path_factory: pytest.TempPathFactory) -> Catalog:
    require("findscu")
    datasets, cat = build()
    assert scu.store_datasets(module_listener, datasets) == [0x0000] * len(datasets)
    jpeg = scu.vendor_copy(JPEG_FILE, tmp_path_factory.mktemp("jpeg"))
    assert scu.store_files(module_listener, [jpeg]) == [0x0000]
    cat.listener = module_listener
    return cat


def findscu(listener: Any, model: str, keys: list[str], out: Path) -> list[Dataset]:
    """Run findscu, extracting every response identifier to ``out`` (-X), and read them."""
    out.mkdir()
    args = [model, "-X", "-od", str(out)]
    for key in keys:
        args += ["-k", key]
    ok(run("findscu", *args, *peer(listener)))
    return read_dir(out)


def test_echoscu(catalog: Catalog) -> None:
    ok(run("echoscu", *peer(catalog.listener)))


def test_findscu_patient_level_wildcard(catalog: Catalog, tmp_path: Path) -> None:
    found = findscu(catalog.listener, "-P", [
        "QueryRetrieveLevel=PATIENT", "PatientName=DOE*", "PatientID",
        "NumberOfPatientRelatedStudies"], tmp_path / "rsp")
    assert sorted(r.PatientID for r in found) == ["PID001", "PID002"]
    assert {r.PatientID: int(r.NumberOfPatientRelatedStudies) for r in found} == \
        {"PID001": 2, "PID002": 1}


def test_findscu_study_level_date_range(catalog: Catalog, tmp_path: Path) -> None:
    found = findscu(catalog.listener, "-S", [
        "QueryRetrieveLevel=STUDY", "StudyDate=20250101-20250131", "StudyInstanceUID",
        "NumberOfStudyRelatedInstances", "ModalitiesInStudy", "PatientName"],
        tmp_path / "rsp")
    got = {r.StudyInstanceUID: (int(r.NumberOfStudyRelatedInstances), str(r.PatientName))
           for r in found}
    assert got == {catalog.studies["S1"]: (4, "DOE^JANE"), catalog.studies["S2"]: (3, "DOE^JANE")}
    assert len(found) == 2


def test_findscu_study_level_uid_list(catalog: Catalog, tmp_path: Path) -> None:
    wanted = [catalog.studies["S2"], catalog.studies["S4"]]
    found = findscu(catalog.listener, "-S", [
        "QueryRetrieveLevel=STUDY", "StudyInstanceUID=" + "\\".join(wanted),
        "AccessionNumber"], tmp_path / "rsp")
    assert sorted(r.StudyInstanceUID for r in found) == sorted(wanted)
    assert sorted(r.AccessionNumber for r in found) == ["ACC002", "ACC_004"]


def test_findscu_study_level_universal(catalog: Catalog, tmp_path: Path) -> None:
    found = findscu(catalog.listener, "-S", ["QueryRetrieveLevel=STUDY", "StudyInstanceUID"],
                    tmp_path / "rsp")
    # the five generated studies and the JPEG file's study
    assert len(found) == 6
    assert set(catalog.studies.values()) <= {r.StudyInstanceUID for r in found}


def test_findscu_patient_root_study_level(catalog: Catalog, tmp_path: Path) -> None:
    found = findscu(catalog.listener, "-P", [
        "QueryRetrieveLevel=STUDY", "PatientID=PID001", "StudyInstanceUID"], tmp_path / "rsp")
    assert sorted(r.StudyInstanceUID for r in found) == \
        sorted([catalog.studies["S1"], catalog.studies["S2"]])


def test_findscu_series_level_wildcard_name(catalog: Catalog, tmp_path: Path) -> None:
    found = findscu(catalog.listener, "-S", [
        "QueryRetrieveLevel=SERIES", "PatientName=DOE*", "Modality=MR", "SeriesInstanceUID",
        "StudyInstanceUID"], tmp_path / "rsp")
    assert sorted(r.SeriesInstanceUID for r in found) == \
        sorted([catalog.series["S2a"], catalog.series["S3mr"]])
    assert {r.Modality for r in found} == {"MR"}


def test_findscu_image_level_wildcard_name(catalog: Catalog, tmp_path: Path) -> None:
    found = findscu(catalog.listener, "-S", [
        "QueryRetrieveLevel=IMAGE", "PatientName=DOE^J?HN", "SOPInstanceUID",
        "InstanceNumber"], tmp_path / "rsp")
    assert sorted(r.SOPInstanceUID for r in found) == sorted(catalog.sops("S3ct", "S3mr"))


def test_findscu_image_level_of_one_series(catalog: Catalog, tmp_path: Path) -> None:
    found = findscu(catalog.listener, "-S", [
        "QueryRetrieveLevel=IMAGE", f"StudyInstanceUID={catalog.studies['S2']}",
        f"SeriesInstanceUID={catalog.series['S2a']}", "SOPInstanceUID"], tmp_path / "rsp")
    assert sorted(r.SOPInstanceUID for r in found) == sorted(catalog.sops("S2a"))


@contextlib.contextmanager
def storescp(directory: Path, ae_title: str) -> Iterator[int]:
    """A DCMTK storescp accepting every transfer syntax, writing into ``directory``."""
    directory.mkdir()
    port = free_port()
    proc = subprocess.Popen([require("storescp"), "-aet", ae_title, "+xa", "-od",
                             str(directory), str(port)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 10
        while True:
            assert proc.poll() is None, "storescp exited before listening"
            with socket.socket() as sock:
                if sock.connect_ex(("127.0.0.1", port)) == 0:
                    break
            assert time.monotonic() < deadline, "storescp did not start listening"
            time.sleep(0.05)
        yield port
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def test_movescu_to_dcmtk_storescp(catalog: Catalog, tmp_path: Path) -> None:
    title = f"DCMDEST{next(_titles)}"
    with storescp(tmp_path / "received", title) as port:
        catalog.listener.services.aes.add(title, "127.0.0.1", port)
        ok(run("movescu", "-S", "-aem", title, "-k", "QueryRetrieveLevel=STUDY",
               "-k", f"StudyInstanceUID={catalog.studies['S1']}", *peer(catalog.listener)))
        ok(run("movescu", "-S", "-aem", title, "-k", "QueryRetrieveLevel=SERIES",
               "-k", f"StudyInstanceUID={catalog.studies['S3']}",
               "-k", f"SeriesInstanceUID={catalog.series['S3mr']}", *peer(catalog.listener)))
    received = read_dir(tmp_path / "received")
    assert sorted(r.SOPInstanceUID for r in received) == \
        sorted(catalog.sops("S1a", "S1b", "S3mr"))


def test_movescu_compressed_file_to_dcmtk_storescp(catalog: Catalog, tmp_path: Path) -> None:
    original = dcmread(scu.vendor_copy(JPEG_FILE, _mkdir(tmp_path / "orig")))
    title = f"DCMDEST{next(_titles)}"
    with storescp(tmp_path / "received", title) as port:
        catalog.listener.services.aes.add(title, "127.0.0.1", port)
        ok(run("movescu", "-S", "-aem", title, "-k", "QueryRetrieveLevel=IMAGE",
               "-k", f"StudyInstanceUID={original.StudyInstanceUID}",
               "-k", f"SeriesInstanceUID={original.SeriesInstanceUID}",
               "-k", f"SOPInstanceUID={original.SOPInstanceUID}", *peer(catalog.listener)))
    [received] = read_dir(tmp_path / "received")
    assert received.SOPInstanceUID == original.SOPInstanceUID
    assert received.file_meta.TransferSyntaxUID == original.file_meta.TransferSyntaxUID
    assert received.PixelData == original.PixelData


def test_movescu_to_unknown_destination_fails(catalog: Catalog) -> None:
    result = run("movescu", "-S", "-aem", "NOSUCHAE", "-k", "QueryRetrieveLevel=STUDY",
                 "-k", f"StudyInstanceUID={catalog.studies['S1']}", *peer(catalog.listener))
    output = result.stdout + result.stderr
    assert result.returncode != 0
    # DCMTK names status 0xA801 "Refused: MoveDestinationUnknown"
    assert "MoveDestinationUnknown" in output, output


def test_getscu_into_directory(catalog: Catalog, tmp_path: Path) -> None:
    out = _mkdir(tmp_path / "got")
    ok(run("getscu", "-S", "-od", str(out), "-k", "QueryRetrieveLevel=STUDY",
           "-k", f"StudyInstanceUID={catalog.studies['S3']}", *peer(catalog.listener)))
    assert sorted(r.SOPInstanceUID for r in read_dir(out)) == \
        sorted(catalog.sops("S3ct", "S3mr"))


def test_getscu_image_level(catalog: Catalog, tmp_path: Path) -> None:
    out = _mkdir(tmp_path / "got")
    sop = catalog.instances["S2a"][2]
    ok(run("getscu", "-S", "-od", str(out), "-k", "QueryRetrieveLevel=IMAGE",
           "-k", f"StudyInstanceUID={catalog.studies['S2']}",
           "-k", f"SeriesInstanceUID={catalog.series['S2a']}",
           "-k", f"SOPInstanceUID={sop}", *peer(catalog.listener)))
    assert [r.SOPInstanceUID for r in read_dir(out)] == [sop]
