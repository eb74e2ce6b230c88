"""storage.duplicates: data set bytes compared past any File Meta group (PS3.10 7.1)."""

from __future__ import annotations

import io
import os
import tempfile
from pathlib import Path

import pytest
from pydicom.data import get_testdata_file
from pydicom.dataset import FileMetaDataset
from pydicom.filebase import DicomBytesIO
from pydicom.filereader import read_dataset, read_preamble
from pydicom.filewriter import write_file_meta_info

from storage.duplicates import FileAt, data_set_start, same_data_set


class Trickle(io.RawIOBase):
    """A network body: at most ``step`` bytes per read, and it counts what was read."""

    def __init__(self, data: bytes, step: int = 1000) -> None:
        self._data, self._pos, self._step = data, 0, step

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1, /) -> bytes:
        size = self._step if size < 0 else min(size, self._step)
        out = self._data[self._pos:self._pos + size]
        self._pos += len(out)
        return out

    @property
    def consumed(self) -> int:
        return self._pos


def part10(body: bytes, **meta: str | bytes) -> bytes:
    fm = FileMetaDataset()
    fm.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.2"
    fm.MediaStorageSOPInstanceUID = "1.2.3.4"
    fm.TransferSyntaxUID = "1.2.840.10008.1.2.1"
    fm.ImplementationClassUID = "1.2.3.999"
    for keyword, value in meta.items():
        setattr(fm, keyword, value)
    buf = DicomBytesIO()
    buf.write(b"\0" * 128 + b"DICM")
    write_file_meta_info(buf, fm, enforce_standard=True)
    return bytes(buf.getvalue()) + body


BODY = bytes(range(256)) * 40_000  # ~10 MB: several comparison chunks


def same(a: bytes, b: bytes, step: int = 1000) -> bool:
    return same_data_set(io.BytesIO(a), len(a), Trickle(b, step), len(b))


def test_data_set_start_skips_the_whole_file_meta_group() -> None:
    ct = Path(str(get_testdata_file("CT_small.dcm"))).read_bytes()
    meta_end = len(part10(b""))
    assert data_set_start(part10(b"x" * 8)) == meta_end
    assert data_set_start(ct) == _pydicom_meta_end(ct)
    assert data_set_start(b"\x08\x00\x05\x00CS\x0a\x00ISO_IR 100") == 0  # no preamble
    assert data_set_start(part10(b"")[:150]) is None  # ends within the File Meta group
    assert data_set_start(part10(b""), whole=True) == meta_end


def _pydicom_meta_end(data: bytes) -> int:
    fp = io.BytesIO(data)
    read_preamble(fp, False)
    read_dataset(fp, is_implicit_VR=False, is_little_endian=True,
                 stop_when=lambda tag, vr, length: tag.group != 2)
    return fp.tell()


def test_same_data_set_under_different_file_meta_groups() -> None:
    received = part10(BODY)
    original = part10(BODY, SourceApplicationEntityTitle="MODALITY",
                      ImplementationVersionName="MOD_1")
    assert received != original
    assert same(received, original)
    assert same(original, received, step=4093)  # reads that split every chunk boundary


def test_a_file_meta_group_longer_than_the_first_read_is_walked() -> None:
    long_meta = part10(BODY, PrivateInformationCreatorUID="1.2.3",
                       PrivateInformation=b"\x01" * 10_000)
    assert data_set_start(long_meta) == len(long_meta) - len(BODY)
    assert same(part10(BODY), long_meta)


@pytest.mark.parametrize("where", [0, len(BODY) // 2, len(BODY) - 1])
def test_one_changed_byte_is_a_different_data_set(where: int) -> None:
    changed = bytearray(BODY)
    changed[where] ^= 0xFF
    assert not same(part10(BODY), part10(bytes(changed)))


def test_different_lengths_are_answered_from_the_first_bytes() -> None:
    stored = Trickle(part10(BODY + b"\0\0"))
    new = part10(BODY)
    assert not same_data_set(io.BytesIO(new), len(new), stored, len(part10(BODY + b"\0\0")))
    assert stored.consumed <= 8192


def test_unreadable_file_meta_is_not_the_same() -> None:
    truncated = part10(BODY)[:140]
    assert not same(part10(BODY), truncated)


def test_file_at_reads_by_position_and_leaves_the_offset() -> None:
    with tempfile.TemporaryFile() as fh:
        fh.write(part10(BODY))
        fh.seek(5)
        reader = FileAt(fh.fileno())
        assert reader.read(4) == b"\0\0\0\0"
        assert len(reader.read()) == len(part10(BODY)) - 4
        assert os.lseek(fh.fileno(), 0, os.SEEK_CUR) == 5
