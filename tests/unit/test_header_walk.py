"""storage.headerwalk reads a header into exactly the dataset pydicom's reader builds, or
declines: checked over every file pydicom ships and generated CT/MR headers in both
little endian encodings, and through read_header (same header, same refusals)."""

from __future__ import annotations

import io
import json
import warnings
from pathlib import Path
from typing import Any

import pydicom.data
import pytest
from pydicom import dcmread
from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset
from pydicom.tag import BaseTag
from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian

from storage import dicomio, headerwalk
from storage.dicomio import read_header
from tests.support.data import StudySpec, make_study, write

FILES = sorted((Path(pydicom.data.__file__).parent / "test_files").rglob("*.dcm"))


def _elements(ds: Dataset) -> list[Any]:
    """Every element as read: raw ones field by field, parsed sequences as JSON."""
    out: list[Any] = []
    for tag, elem in ds._dict.items():
        if isinstance(elem, RawDataElement):
            out.append((int(tag), tuple(elem)))
        else:
            out.append((int(tag), elem.VR, elem.is_undefined_length, elem.file_tell,
                        json.dumps(elem.to_json_dict(lambda _e: "", 1024), sort_keys=True)))
    return out


def _compare(data: bytes) -> bool:
    """Assert the walk equals pydicom's read of ``data``; whether the walk took it."""
    fast_fp = io.BytesIO(data)
    fast = headerwalk.read_head(fast_fp)
    if fast is None:
        assert fast_fp.tell() == 0
        return False
    ref_fp = io.BytesIO(data)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the walk takes only what pydicom reads silently
        ref = dcmread(ref_fp, stop_before_pixels=True)
    assert fast_fp.tell() == ref_fp.tell()
    assert _elements(fast) == _elements(ref)
    # pydicom converts some file meta elements while reading it: compare the values.
    assert [(e.tag, e.VR, e.value) for e in fast.file_meta] == \
        [(e.tag, e.VR, e.value) for e in ref.file_meta]
    assert fast.original_encoding == ref.original_encoding
    assert fast.original_character_set == ref.original_character_set
    assert fast.preamble == ref.preamble
    return True


@pytest.mark.filterwarnings("ignore")
def test_walk_equals_pydicom_over_its_files() -> None:
    taken = sum(_compare(path.read_bytes()) for path in FILES)
    # Most of pydicom's files are the plain case; the rest (big endian, deflated, no
    # preamble, broken) are declined and read by pydicom.
    assert taken > len(FILES) // 3, taken


@pytest.mark.parametrize("syntax", [ExplicitVRLittleEndian, ImplicitVRLittleEndian])
def test_walk_takes_generated_ct_and_mr(tmp_path: Path, syntax: str) -> None:
    for modality in ("CT", "MR"):
        ds = make_study(StudySpec(modality=modality, series=1, instances=1))[0]
        ds.file_meta.TransferSyntaxUID = syntax
        data = write(ds, tmp_path / modality).read_bytes()
        assert _compare(data)
        for cut in (200, len(data) // 2, len(data) - 3):  # cut in transfer
            _compare(data[:cut])


def test_walk_reads_past_its_first_read(tmp_path: Path) -> None:
    ds = make_study(StudySpec(series=1, instances=1))[0]
    ds.ImageComments = "x" * (3 * headerwalk._HEAD)  # a header longer than one read
    assert _compare(write(ds, tmp_path).read_bytes())


def _header_or_refusal(path: Path) -> str:
    try:
        header = read_header(path)
    except Exception as exc:
        return type(exc).__name__
    return _header_or_refusal_of(header)


@pytest.mark.filterwarnings("ignore")
@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_read_header_same_with_and_without_the_walk(
        path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ours = _header_or_refusal(path)
    monkeypatch.setattr(dicomio, "read_head", lambda fp: None)
    assert ours == _header_or_refusal(path)


def _with_head(path: Path, cut: int) -> str | None:
    """What read_header gives for ``path`` given the header parsed from its first
    ``cut`` bytes, or ``None`` if those bytes were not parsed."""
    head = dicomio.parse_head(path.read_bytes()[:cut])
    if head is None:
        return None
    try:
        header = read_header(path, head=head)
    except Exception as exc:
        return type(exc).__name__
    return _header_or_refusal_of(header)


def _header_or_refusal_of(header: dicomio.Header) -> str:
    return json.dumps([header.metadata_json(), header.transfer_syntax_uid,
                       header.sop_class_uid, header.sop_instance_uid, header.study_uid,
                       header.series_uid, repr(header.pixel_data),
                       [header.text(k) for k in ("PatientName", "PatientID", "Modality",
                                                 "StudyDate", "AccessionNumber")],
                       [header.integer(k) for k in ("Rows", "Columns", "InstanceNumber")]])


@pytest.mark.filterwarnings("ignore")
def test_header_parsed_from_first_bytes_is_read_headers(tmp_path: Path) -> None:
    """parse_head on any prefix of a file either declines or gives, with the whole file,
    exactly read_header's header or refusal; it declines until the Pixel Data is in."""
    generated = [write(ds, tmp_path / str(index)) for index, ds in
                 enumerate(make_study(StudySpec(modality="MR", series=1, instances=2)))]
    parsed = 0
    for path in FILES + generated:
        size = path.stat().st_size
        expected = _header_or_refusal(path)
        complete = None
        for cut in sorted({64, 200, 1000, 4000, size // 2, size - 1, size}):
            got = _with_head(path, cut)
            if got is not None:
                assert got == expected, (path.name, cut)
                complete = cut if complete is None else complete
                parsed += 1
            elif complete is not None:
                raise AssertionError(f"{path.name}: parsed from {complete} bytes, not {cut}")
    assert parsed > len(FILES), parsed


def test_header_not_parsed_before_pixel_data(tmp_path: Path) -> None:
    data = write(make_study(StudySpec(series=1, instances=1))[0], tmp_path).read_bytes()
    at = data.index(b"\xe0\x7f\x10\x00")
    assert dicomio.parse_head(data[:at]) is None  # the last elements may be missing
    assert dicomio.parse_head(data[:at + 11]) is None  # its length not in yet
    head = dicomio.parse_head(data[:at + 12])
    assert head is not None and head.end == at


@pytest.mark.parametrize("value", [b"1.2.840.10008.1.2.1\0", b"1.2.840.10008.1.2.4.50 ",
                                   b"1.2.840.10008.1.2", b"", b"1.2.840.10008.1.2\\1.2.3"])
def test_transfer_syntax_read_from_its_bytes_as_pydicom_converts_it(value: bytes) -> None:
    def meta() -> Dataset:
        ds = Dataset()
        ds[0x00020010] = RawDataElement(BaseTag(0x00020010), "UI", len(value), value, 0,
                                        False, True)
        return ds

    assert dicomio._transfer_syntax(meta()) == str(meta().get("TransferSyntaxUID", "") or "")
