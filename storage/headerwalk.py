"""The header of a received Part 10 file, read by one walk over its bytes.

``dcmread(fp, stop_before_pixels=True)`` was two thirds of the CPU of reading a header at
ingest (storage.dicomio): its element generator reads the file eight bytes at a time and
judges every case a file might present. Nearly every received object is the plain case:
a preamble, File Meta Information in Explicit VR Little Endian (PS3.10 7.1), then a data
set in Implicit or Explicit VR Little Endian (PS3.5 A.1, A.2, A.4) of defined-length
elements up to the Pixel Data. :func:`read_head` walks those bytes with
``struct.unpack_from`` and builds the same dataset pydicom would (the same
``RawDataElement`` objects, file meta and encodings, the file left at the same position);
anything else it declines (``None``), and the caller reads the file with pydicom:
big endian or deflated data, an unknown transfer syntax, a VR or encoding pydicom would
have to guess at, a command group, undefined-length values other than sequences, a
truncated element, pydicom set to raise on invalid input or to debug its reading.
(Its UN settings matter only for undefined-length UN values, which are declined.)
tests/unit/test_header_walk.py proves the datasets equal over every file pydicom ships.
"""

from __future__ import annotations

import io
import struct
from typing import Any, BinaryIO

from pydicom import config
from pydicom.charset import convert_encodings, default_encoding
from pydicom.datadict import dictionary_VR
from pydicom.dataelem import (
    DataElement,
    RawDataElement,
    empty_value_for_VR,
)
from pydicom.dataset import FileDataset, FileMetaDataset
from pydicom.filebase import DicomBytesIO
from pydicom.filereader import read_sequence
from pydicom.tag import BaseTag
from pydicom.uid import UID
from pydicom.valuerep import EXPLICIT_VR_LENGTH_32, VR
from pydicom.values import convert_string

_HEAD = 16384
"""Bytes read first: the header of a CT or MR image is 1-3 KiB."""
_LIMIT = 4 << 20
"""Largest header walked; a longer one (e.g. big private sequences) goes to pydicom."""
_ELEMENT = struct.Struct("<HH2sH")
_IMPLICIT = struct.Struct("<HHL")
_LONG = struct.Struct("<L")
_VRS = {vr.encode("ascii"): str(vr) for vr in VR}
_LONG_VRS = frozenset(str(vr) for vr in EXPLICIT_VR_LENGTH_32)
_PIXELS = frozenset({0x7FE00008, 0x7FE00009, 0x7FE00010})
_LITTLE_ENDIAN = frozenset({"1.2.840.10008.1.2", "1.2.840.10008.1.2.1"})


class _Short(Exception):
    """The bytes read so far end within the header."""


def read_head(fp: BinaryIO) -> FileDataset | None:
    """The dataset ``dcmread(fp, stop_before_pixels=True)`` returns, or ``None`` when
    the file is not the plain case (the module docstring), with ``fp`` then back at 0.

    On success ``fp`` is left where pydicom leaves it: at the Pixel Data element, or at
    the end of the file.
    """
    if config.settings.reading_validation_mode == config.RAISE or config.debugging:
        return None  # pydicom would raise on what it otherwise warns about, or log
    size = _HEAD
    while True:
        fp.seek(0)
        data = fp.read(size)
        complete = len(data) < size
        try:
            ds = _walk(fp, data, complete)
            if ds is not None:
                return ds
            break
        except _Short:
            if complete or size >= _LIMIT:
                break
            size *= 4
        except (struct.error, ValueError, KeyError, EOFError, NotImplementedError):
            break
    fp.seek(0)
    return None


def read_prefix(data: bytes) -> tuple[FileDataset, int] | None:
    """The dataset :func:`read_head` returns for a file starting with ``data``, and the
    offset of its Pixel Data element, if ``data`` holds every element before it.

    For a file still being received (``data`` is what arrived so far): elements end at
    the Pixel Data, so the dataset does not depend on bytes after it. ``None`` when the
    file is not the plain case, has no Pixel Data within ``data``, or has an
    undefined-length sequence (its end is found only with the whole file).
    """
    if config.settings.reading_validation_mode == config.RAISE or config.debugging:
        return None
    fp = io.BytesIO(data)
    try:
        ds = _walk(fp, data, False)
    except (_Short, struct.error, ValueError, KeyError, EOFError, NotImplementedError):
        return None
    return None if ds is None else (ds, fp.tell())


def _walk(fp: BinaryIO, data: bytes, complete: bool) -> FileDataset | None:
    if data[128:132] != b"DICM":
        return None
    meta, pos = _elements(data, 132, complete, False, meta=True)
    if meta is None or not meta:
        return None
    ts_raw = meta.get(BaseTag(0x00020010))
    if ts_raw is None or not ts_raw.value or ts_raw.VR != VR.UI:
        return None
    ts = UID(convert_string(ts_raw.value, True).strip())
    if ts in _LITTLE_ENDIAN:
        implicit = ts == "1.2.840.10008.1.2"
    elif ts.is_transfer_syntax and ts.is_encapsulated and not ts.is_deflated \
            and ts.is_little_endian and not ts.is_implicit_VR:
        implicit = False  # every encapsulated syntax is Explicit VR LE (PS3.5 A.4)
    else:
        return None
    if len(data) - pos >= 6:
        vr = data[pos + 4:pos + 6]
        # As pydicom's _is_implicit_vr: an encoding contradicting the syntax is guessed.
        if (not (0x40 < vr[0] < 0x5B and 0x40 < vr[1] < 0x5B)) != implicit:
            return None
        if struct.unpack_from("<H", data, pos)[0] == 0x0000:
            return None  # a command group: pydicom adds it separately
    elif pos < len(data) or not complete:
        raise _Short
    elements, end = _elements(data, pos, complete, implicit, meta=False)
    if elements is None:
        return None
    # The datasets are built as pydicom's read_partial builds them, minus the
    # intermediate copies (each Dataset construction costs as much as ten elements).
    file_meta = FileMetaDataset(meta)
    file_meta.set_original_encoding(False, True, default_encoding)
    ds = FileDataset(fp, elements, data[:128], file_meta, implicit, True)
    ds.set_original_encoding(implicit, True, ds._character_set)
    fp.seek(end)
    return ds


def _elements(data: bytes, pos: int, complete: bool, implicit: bool, *, meta: bool
              ) -> tuple[dict[BaseTag, Any] | None, int]:
    """The elements from ``pos`` as pydicom's generator yields them, and where it stops:
    group 0002 ends at another group (``meta``), the data set at Pixel Data or the end."""
    found: dict[BaseTag, Any] = {}
    end = len(data)
    encoding: Any = default_encoding
    while True:
        if end - pos < 8:
            if pos == end and complete:
                return found, pos
            if complete:
                return None, pos  # trailing bytes pydicom would judge
            raise _Short
        if meta and data[pos:pos + 2] != b"\x02\x00":
            return found, pos  # group 0002 ends where another group starts
        if implicit:
            group, element, length = _IMPLICIT.unpack_from(data, pos)
            vr: str | None = None
            start = pos + 8
        else:
            group, element, raw_vr, length = _ELEMENT.unpack_from(data, pos)
            vr = _VRS.get(raw_vr)
            if vr is None:
                return None, pos
            start = pos + 8
            if vr in _LONG_VRS:
                if end - pos < 12:
                    if complete:
                        return None, pos
                    raise _Short
                length = _LONG.unpack_from(data, start)[0]
                start += 4
        tag = group << 16 | element
        if not meta and (tag in _PIXELS or tag == 0xFFFEE00D):
            return (found, pos) if tag in _PIXELS else (None, pos)
        if tag in found:
            return None, pos  # a repeated tag: pydicom keeps the last, we need not judge
        if length == 0xFFFFFFFF:
            if meta:
                return None, pos
            if implicit:
                vr = dictionary_VR(tag) if tag >> 16 & 1 == 0 else None
            if vr != VR.SQ:
                return None, pos
            if not complete:
                raise _Short  # the sequence may end beyond what is read
            fp = DicomBytesIO(data)
            fp.is_little_endian, fp.is_implicit_VR = True, implicit
            fp.seek(start)
            sequence = read_sequence(fp, implicit, True, length, encoding)
            found[BaseTag(tag)] = DataElement(BaseTag(tag), vr, sequence, start,
                                              is_undefined_length=True)
            pos = fp.tell()
            continue
        if start + length > end:
            if complete:
                return None, pos  # truncated: pydicom's EOF warning, our refusal
            raise _Short
        value = data[start:start + length] if length else empty_value_for_VR(vr, raw=True)
        if tag == 0x00080005 and not meta:
            encoding = convert_encodings(convert_string(value or b"", True))
        found[BaseTag(tag)] = RawDataElement(BaseTag(tag), vr, length, value, start,
                                             implicit, True)
        pos = start + length
