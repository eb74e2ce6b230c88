"""The stored DICOM JSON header (PS3.18 F.2) is exactly what pydicom's generic
``to_json_dict`` gives, though :mod:`storage.dicomjson` builds it in its own single walk
and converts plain elements straight from their bytes: checked over every file pydicom
ships (odd VRs, byte orders, character sets, sequences, bulk data, bad values) and the
bench corpus' kind of CT, as read at ingest and as raw network datasets (MPPS)."""

from __future__ import annotations

import json
import warnings
from dataclasses import replace
from pathlib import Path
from typing import Any

import pydicom.data
import pytest
from pydicom import dcmread
from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset

from storage import dicomio, dicomjson
from storage.dicomio import read_header
from storage.dicomjson import BULK_INLINE_LIMIT, bulk_paths, dataset_to_json
from tests.support.data import StudySpec, make_study, write

FILES = sorted((Path(pydicom.data.__file__).parent / "test_files").rglob("*.dcm"))
BASE = "/studies/1.2/series/1.3/instances/1.4/bulkdata"


def pydicom_json(ds: Dataset, bulk_base: str) -> dict[str, Any]:
    """The reference: pydicom's own walk, with the bulk data paths found beforehand."""
    paths = bulk_paths(ds) if bulk_base else {}

    def reference(element: DataElement) -> str:
        path = paths.get(id(element))
        return f"{bulk_base}/{path}" if path else ""

    result = ds.to_json_dict(bulk_data_threshold=BULK_INLINE_LIMIT,
                             bulk_data_element_handler=reference, suppress_invalid_tags=True)

    def drop_empty(node: dict[str, Any]) -> None:
        for element in node.values():
            if element.get("BulkDataURI") == "":
                del element["BulkDataURI"]
            for item in element.get("Value", ()) if element.get("vr") == "SQ" else ():
                drop_empty(item)

    drop_empty(result)
    return result


def _read(path: Path, *, touched: bool) -> Dataset:
    ds = dcmread(path, stop_before_pixels=True, force=True)
    if touched:  # as read_header leaves it: every top-level element converted
        for _elem in ds:
            pass
    return ds


def _reads(path: Path, read: Any) -> bool:
    """Whether ``read`` takes the file (at collection: its warnings are the files' own)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            read(path)
    except Exception:
        return False
    return True


PARSABLE = [path for path in FILES
            if _reads(path, lambda p: _read(p, touched=True))]
"""The files whose header pydicom can read (a few are deliberately broken)."""
ARCHIVABLE = [path for path in FILES if _reads(path, read_header)]
"""The files ingest accepts; the refusal comparison below covers the others."""


def _canonical(result: dict[str, Any]) -> str:
    return json.dumps(result, sort_keys=True, default=repr)


@pytest.mark.filterwarnings("ignore")
@pytest.mark.parametrize("path", PARSABLE, ids=lambda p: p.name)
def test_header_json_is_pydicoms(path: Path) -> None:
    for bulk_base, touched in ((BASE, True), ("", True), ("", False)):
        expected = _canonical(pydicom_json(_read(path, touched=touched), bulk_base))
        assert _canonical(dataset_to_json(_read(path, touched=touched), bulk_base)) == expected


@pytest.mark.filterwarnings("ignore")
@pytest.mark.parametrize("path", ARCHIVABLE, ids=lambda p: p.name)
def test_ingest_header_json_is_pydicoms(path: Path) -> None:
    """What read_header stores: plain elements converted from their bytes, the rest by
    pydicom, the pixel data referenced."""
    header = read_header(path)
    stored = json.loads(header.metadata_json())
    if header.pixel_data is not None:
        del stored[f"{header.pixel_data.tag:08X}"]
    expected = pydicom_json(_read(path, touched=True), header.bulk_base())
    assert _canonical(stored) == _canonical(expected)


def _read_header(path: Path) -> str:
    try:
        return read_header(path).metadata_json()
    except Exception as exc:
        return type(exc).__name__


@pytest.mark.filterwarnings("ignore")
@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_same_headers_refused_as_with_pydicoms_conversion(
        path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Converting plain elements from their bytes neither refuses a header pydicom's
    conversion accepts nor accepts one it refuses (a number of the wrong length)."""
    ours = _read_header(path)
    monkeypatch.setattr(dicomjson, "_raw_json",
                        lambda raw, codec=None: None)  # all through pydicom
    assert ours == _read_header(path)


def test_generated_ct_header(tmp_path: Path) -> None:
    path = write(make_study(StudySpec(instances=1))[0], tmp_path)
    ours = dataset_to_json(_read(path, touched=True), BASE)
    assert ours == pydicom_json(_read(path, touched=True), BASE)
    assert ours["00100010"] == {"vr": "PN", "Value": [{"Alphabetic": "DOE^JANE"}]}
    assert ours["00280010"]["Value"] == [ours["00280010"]["Value"][0]]
    stored = json.loads(read_header(path).metadata_json())
    del stored["7FE00010"]
    assert _canonical(stored) == _canonical(ours)


def test_invalid_number_is_left_out() -> None:
    ds = Dataset()
    ds.add_new(0x00200013, "IS", None)
    ds[0x00200013]._value = "1A"  # as a lenient read keeps an unconvertible value
    ds.add_new(0x00080060, "CS", "CT")
    assert dataset_to_json(ds, BASE) == {"00080060": {"vr": "CS", "Value": ["CT"]}}


INDEXED = ("AccessionNumber", "BodyPartExamined", "InstitutionName", "Modality",
           "PatientBirthDate", "PatientID", "PatientName", "PatientSex",
           "ReferringPhysicianName", "SeriesDate", "SeriesDescription", "StationName",
           "StudyDate", "StudyDescription", "StudyID", "StudyTime", "ImageType",
           "PixelSpacing", "SliceThickness", "WindowCenter")
NUMBERS = ("Columns", "InstanceNumber", "NumberOfFrames", "Rows", "SeriesNumber",
           "BitsAllocated", "SliceThickness", "PixelSpacing")


@pytest.mark.filterwarnings("ignore")
@pytest.mark.parametrize("path", ARCHIVABLE, ids=lambda p: p.name)
def test_index_values_are_pydicoms(path: Path) -> None:
    """The index columns read from the elements converted from their bytes are the
    values pydicom's own conversion gives."""
    header = read_header(path)
    reference = replace(header, dataset=_read(path, touched=True), checked=None)
    for keyword in INDEXED:
        assert header.text(keyword) == reference.text(keyword), keyword
    for keyword in NUMBERS:
        assert header.integer(keyword) == reference.integer(keyword), keyword


NAMES = [b"DOE^JANE", b"DOE^JANE ", b"DOE^JANE\x00", b"", b" ", b"=", b"==", b"A=", b"=B",
         b"A=B=C", b"A=B=C=D", b"A\\B", b"A\\", b"\\", b"A\\=B", b" A ^ B ", b"A^B^^^",
         b"M\xfcller^J\xf6rg", "Müller^Jörg".encode(), "山田^太郎=やまだ".encode(),
         b"\xff\xfe", b"\x1b-AM\xfcller", b"A\\B=C\\\\"]
"""Person names as received: padding, empty groups and values, more than three groups,
Latin-1 and UTF-8 bytes (valid or not in the declared set), an escape sequence."""


@pytest.mark.filterwarnings("ignore")
@pytest.mark.parametrize("charset", [None, "ISO_IR 100", "ISO_IR 192", "ISO_IR 6",
                                     ["ISO 2022 IR 6", "ISO 2022 IR 100"], "ISO_IR 101"])
def test_person_names_from_bytes_are_pydicoms(tmp_path: Path, charset: Any) -> None:
    """Names converted from their bytes give pydicom's JSON and index text, for every
    character set taken (and the others, which pydicom converts)."""
    template = make_study(StudySpec(instances=1))[0]
    taken = 0
    for index, name in enumerate(NAMES):
        ds = template.copy()
        if charset is None:
            ds.pop(0x00080005, None)
        else:
            ds.SpecificCharacterSet = charset
        path = write(ds, tmp_path / str(index))
        data = path.read_bytes()
        at = data.index(b"DOE^JANE")  # the encoded PatientName value, padded to 8
        length = len(name) + len(name) % 2
        data = data[:at - 2] + length.to_bytes(2, "little") + name.ljust(length) + \
            data[at + 8:]
        path.write_bytes(data)
        header = read_header(path)
        stored = json.loads(header.metadata_json())
        del stored["7FE00010"]
        expected = pydicom_json(_read(path, touched=True), header.bulk_base())
        assert _canonical(stored) == _canonical(expected), name
        reference = replace(header, dataset=_read(path, touched=True), checked=None)
        assert header.text("PatientName") == reference.text("PatientName"), name
        taken += 0x00100010 in header.checked.ready
    # The plain sets take most names from their bytes; the others leave them to pydicom.
    assert (taken > len(NAMES) // 2) == (charset in (None, "ISO_IR 100", "ISO_IR 192",
                                                     "ISO_IR 6")), taken


def test_stored_header_is_valid_json_whatever_its_values(tmp_path: Path) -> None:
    """The header is written with orjson; what it declines takes ``json.dumps``, and
    a number JSON cannot carry is ``null``, never the invalid token ``NaN``."""
    ds = make_study(StudySpec(instances=1))[0]
    ds.PatientName = "MÜLLER^ANNA"
    ds.add_new(0x00181318, "DS", "NaN")  # dB/dt
    ds.add_new(0x00189089, "FD", [float("inf"), 1.5])  # Diffusion Gradient Orientation
    header = read_header(write(ds, tmp_path))
    text = header.metadata_json()
    stored = json.loads(text, parse_constant=lambda token: pytest.fail(f"JSON has {token}"))
    assert stored["00100010"]["Value"] == [{"Alphabetic": "MÜLLER^ANNA"}]
    assert stored["00181318"]["Value"] == [None]
    assert stored["00189089"]["Value"] == [None, 1.5]
    assert "Ü" in text  # UTF-8, as the index column holds it, not a \\u escape
    # a value orjson declines: an integer beyond 64 bits, a lone surrogate
    assert json.loads(dicomio._compact_json({"a": 2**70, "b": "\udcff"})) == {
        "a": 2**70, "b": "\udcff"}
