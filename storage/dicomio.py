"""Reading DICOM headers at ingest: never the pixel data, never a re-encode.

The received bytes are stored as they came; this module only reads what the index needs
(PS3.10 file meta, the main tags) and the DICOM JSON header without bulk data
(PS3.18 F.2), so metadata queries never touch object storage.
"""

from __future__ import annotations

import json
import os
import re
import struct
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

import orjson
from pydicom import dcmread
from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError
from pydicom.uid import UID

from storage.dicomjson import (
    NUMBER_VRS,
    TEXT_VRS,
    CheckedHeader,
    check_header,
    dataset_to_json,
    tag_of,
)
from storage.errors import DatasetDoesNotMatchSopClass, UnreadableDataset
from storage.headerwalk import read_head, read_prefix

UID_RE = re.compile(r"^(0|[1-9][0-9]*)(\.(0|[1-9][0-9]*))*$")
"""PS3.5 9.1: components of digits without leading zeros, at most 64 characters."""

BULK_URI_PREFIX = '"BulkDataURI":"'
"""How every bulk data reference starts in a stored JSON header.

Stored headers hold BulkDataURI values relative to the DICOMweb service root
(``/studies/{study}/series/{series}/instances/{instance}/bulkdata/{path}``); the HTTP
layer makes them absolute by inserting its base URL after this prefix. The prefix cannot
come from a value: quotes inside JSON strings are always escaped."""


def is_valid_uid(value: str) -> bool:
    return 0 < len(value) <= 64 and UID_RE.match(value) is not None


@dataclass(frozen=True)
class PixelDataLocation:
    """Where the pixel data value is in the stored object, found while checking it.

    Frames are then read with ranged reads (PS3.18 8.4.1.3), without parsing the object.
    ``offset`` is the file position of the first value byte (for encapsulated data the
    Basic Offset Table item, PS3.5 A.4), ``length`` the bytes up to the end of the value
    (for encapsulated data including the Sequence Delimitation Item). Both are ``None``
    in a Deflated object, whose pixel data can only be reached by inflating it.
    """

    tag: int
    vr: str
    offset: int | None
    length: int | None
    encapsulated: bool


@dataclass
class Header:
    """What the index keeps of one instance."""

    dataset: Dataset
    transfer_syntax_uid: str
    sop_class_uid: str
    sop_instance_uid: str
    study_uid: str
    series_uid: str
    pixel_data: PixelDataLocation | None = None
    checked: CheckedHeader | None = field(default=None, repr=False)
    """The elements as :func:`read_header` converted them (their JSON partly built)."""
    _json: str | None = field(default=None, repr=False)

    def _converted(self, keyword: str) -> dict[str, Any] | None:
        """The element's DICOM JSON if :func:`read_header` converted it from its bytes."""
        if self.checked is None:
            return None
        tag = tag_of(keyword)
        return self.checked.ready.get(tag) if tag is not None else None

    def text(self, keyword: str) -> str:
        """The element's value as text (multiple values joined by backslashes)."""
        ready = self._converted(keyword)
        if ready is not None and ready["vr"] in TEXT_VRS:
            # The values pydicom would hold (storage.dicomjson), without converting the
            # element again: the index takes about twenty of these per instance.
            values = ready.get("Value") or [""]
            return str(values[0]).strip() if len(values) == 1 else "\\".join(values)
        if ready is not None and ready["vr"] == "PN":
            # As str(PersonName): the groups joined by "=".
            names = ["=".join(name.values()) for name in ready.get("Value") or [{}]]
            return names[0].strip() if len(names) == 1 else "\\".join(names)
        value = self.dataset.get(keyword, "")
        if value is None:
            return ""
        if isinstance(value, list | tuple) or type(value).__name__ == "MultiValue":
            return "\\".join(str(v) for v in value)
        return str(value).strip()

    def integer(self, keyword: str) -> int | None:
        """The element's single value as an integer, or ``None``."""
        ready = self._converted(keyword)
        if ready is not None and ready["vr"] in NUMBER_VRS:
            values = ready.get("Value") or []
            try:
                return int(values[0]) if len(values) == 1 else None
            except (TypeError, ValueError):
                return None
        value = self.dataset.get(keyword)
        try:
            return int(value) if value not in (None, "") else None
        except (TypeError, ValueError):
            return None

    def bulk_base(self) -> str:
        """The instance's bulk data route, relative to the DICOMweb service root."""
        return (f"/studies/{self.study_uid}/series/{self.series_uid}"
                f"/instances/{self.sop_instance_uid}/bulkdata")

    def metadata_json(self) -> str:
        """The DICOM JSON header, bulk data as BulkDataURI references (built once).

        The pixel data (not parsed at ingest) is referenced too, with the VR it was
        encoded with (OW in Implicit VR, PS3.5 A.1), so a viewer sees it exists.
        """
        if self._json is None:
            result = (self.checked.to_json(self.bulk_base()) if self.checked is not None
                      else dataset_to_json(self.dataset, self.bulk_base()))
            if self.pixel_data is not None:
                tag = f"{self.pixel_data.tag:08X}"
                result[tag] = {"vr": self.pixel_data.vr,
                               "BulkDataURI": f"{self.bulk_base()}/{tag}"}
            self._json = _compact_json(result)
        return self._json


def _compact_json(value: dict[str, Any]) -> str:
    """``value`` as compact JSON, with orjson: a tenth of ``json.dumps``'s CPU, for a
    header built for every stored instance. A value orjson declines (an integer beyond
    64 bits) takes ``json.dumps``. The only difference a reader sees: a NaN or infinite
    number (a DS or FD value) is ``null``, which JSON has, not ``NaN``, which it has not."""
    try:
        return orjson.dumps(value).decode()
    except TypeError:
        return json.dumps(value, separators=(",", ":"))


@dataclass(frozen=True)
class Head:
    """A header parsed from the first bytes of a file still arriving (:func:`parse_head`).

    Given to :func:`read_header` with the complete file, it replaces the parse; the
    checks that need the whole file (pixel data not truncated) and the UID checks are
    made there, as for any file.
    """

    dataset: Dataset
    checked: CheckedHeader
    end: int
    """Offset of the Pixel Data element, where the parse stopped."""


def parse_head(data: bytes) -> Head | None:
    """The header of a Part 10 file whose first bytes are ``data``, parsed as
    :func:`read_header` parses it; ``None`` if ``data`` does not hold all of it up to the
    Pixel Data, if the file is not the plain case :mod:`storage.headerwalk` reads, or if
    an element fails to convert (:func:`read_header` then reads the file and reports it).

    A receiver calls this while the rest of the file (the pixel data) is still arriving.
    """
    read = read_prefix(data)
    if read is None:
        return None
    ds, end = read
    try:
        checked = check_header(ds)
    except Exception:  # read_header converts it again and says why it fails
        return None
    return Head(ds, checked, end)


@contextmanager
def _opened(source: str | Path | BinaryIO) -> Iterator[BinaryIO]:
    if isinstance(source, str | Path):
        with open(source, "rb") as fp:
            yield fp
    else:
        yield source


_TRANSFER_SYNTAX = 0x00020010
_IDENTIFYING_TAGS = (0x00080016, 0x00080018, 0x0020000D, 0x0020000E)
"""SOP Class, SOP Instance, Study and Series Instance UID."""


def _transfer_syntax(meta: Dataset) -> str:
    """The File Meta Information's Transfer Syntax UID as pydicom converts it.

    A single raw value is converted here as ``pydicom.values.convert_UI`` does (Latin-1
    text without trailing NULs and spaces): pydicom's conversion of this one element,
    through its element hooks, was a quarter of checking a header parsed on arrival.
    """
    raw = meta.get_item(_TRANSFER_SYNTAX)
    if isinstance(raw, RawDataElement) and isinstance(raw.value, bytes) \
            and b"\\" not in raw.value:
        return raw.value.decode("latin-1").rstrip("\0 ")
    return str(meta.get("TransferSyntaxUID", "") or "")


def read_header(path: str | Path | BinaryIO, *, head: Head | None = None) -> Header:
    """Parse the header of the Part 10 file at ``path`` and check its Type 1 UIDs.

    ``path`` may also be a file opened in binary mode at its start (left open): the
    archive reads a received file through a handle while the object store renames it.
    ``head`` is the header already parsed from the file's first bytes (:func:`parse_head`,
    as they arrived): only the checks are made.

    Raises
    ------
    UnreadableDataset
        The bytes are not a DICOM dataset pydicom can parse.
    DatasetDoesNotMatchSopClass
        SOP Class, SOP Instance, Study or Series Instance UID is missing or malformed
        (PS3.4 B.2.3: status A900 "Data Set does not match SOP Class").
    """
    try:
        with _opened(path) as fp:
            if head is not None:
                ds, checked = head.dataset, head.checked
                fp.seek(head.end)
            else:
                walked = read_head(fp)  # the plain case, else pydicom's reader
                ds = walked if walked is not None else dcmread(fp, stop_before_pixels=True)
                # Convert every top-level element now so a corrupt header fails here,
                # not later while building responses.
                checked = check_header(ds)

            def value(keyword: str) -> Any:
                # As converted from the bytes, else as pydicom converts it.
                single = checked.single(keyword)
                return single if single is not None else ds.get(keyword, "")

            meta = ds.file_meta
            ts = UID(_transfer_syntax(meta))
            implicit, little = ds.original_encoding
            pixels = None
            if ts and not ts.is_deflated and implicit is not None:
                pixels = _check_pixel_data(fp, fp.tell(), os.fstat(fp.fileno()).st_size,
                                           bool(implicit), bool(little),
                                           int(value("BitsAllocated") or 16))
            elif ts and ts.is_deflated and "Rows" in ds and "Columns" in ds:
                # An image whose pixel data is inside the deflated stream (PS3.5 A.5).
                bits = int(value("BitsAllocated") or 16)
                pixels = PixelDataLocation(0x7FE00010, "OW" if bits > 8 else "OB", None, None,
                                           False)
    except (InvalidDicomError, ValueError, TypeError, KeyError, EOFError, OSError,
            struct.error) as exc:
        raise UnreadableDataset(f"dataset cannot be parsed: {type(exc).__name__}") from exc
    # pydicom reads garbage on as unknown elements. If the encoding contradicts the transfer
    # syntax, or not one identifying UID is there, the bytes cannot be understood (0xC000);
    # otherwise a missing or malformed UID is a dataset that does not match (0xA900).
    garbled = (bool(ts) and not ts.is_deflated and ds.original_encoding[0] != ts.is_implicit_VR
               ) or not any(tag in ds for tag in _IDENTIFYING_TAGS)
    if len(ds) == 0:
        raise UnreadableDataset("dataset is empty")

    def uid(keyword: str, fallback: str = "") -> str:
        found = value(keyword) or (str(meta.get(fallback, "")) if fallback else "")
        text = str(found or "").strip().rstrip("\0")
        error = UnreadableDataset if garbled else DatasetDoesNotMatchSopClass
        if not text:
            raise error(f"{keyword} is missing")
        if not is_valid_uid(text):
            raise error(f"{keyword} is not a valid UID")
        return text

    if not ts:
        raise UnreadableDataset("transfer syntax unknown")
    sop_class = uid("SOPClassUID", "MediaStorageSOPClassUID")
    sop_instance = uid("SOPInstanceUID", "MediaStorageSOPInstanceUID")
    return Header(
        dataset=ds,
        transfer_syntax_uid=str(ts),
        sop_class_uid=sop_class,
        sop_instance_uid=sop_instance,
        study_uid=uid("StudyInstanceUID"),
        series_uid=uid("SeriesInstanceUID"),
        pixel_data=pixels,
        checked=checked,
    )


_LONG_VRS = {b"OB", b"OD", b"OF", b"OL", b"OV", b"OW", b"SQ", b"UC", b"UN", b"UR", b"UT"}
_ITEM, _SEQUENCE_END = (0xFFFE, 0xE000), (0xFFFE, 0xE0DD)


_PIXEL_TAGS = {0x7FE00008, 0x7FE00009, 0x7FE00010}


def _check_pixel_data(fp: BinaryIO, pos: int, size: int, implicit: bool, little: bool,
                      bits_allocated: int) -> PixelDataLocation | None:
    """Refuse a dataset whose Pixel Data runs past the end of the received bytes.

    The header read stops before the pixel data, so a value cut short in transfer would
    otherwise be archived as if whole. Walks the element header (and, for encapsulated
    data, the fragment items up to the Sequence Delimitation Item, PS3.5 A.4) without
    reading the pixels, and returns where the value is.
    """
    fp.seek(pos)
    head = fp.read(12)
    if len(head) < 8:
        return None  # no pixel data
    endian = "<" if little else ">"
    group, element = struct.unpack(endian + "HH", head[:4])
    tag = (group << 16) | element
    if implicit:
        vr = "OW" if bits_allocated > 8 or tag != 0x7FE00010 else "OB"
        vr = {0x7FE00008: "OF", 0x7FE00009: "OD"}.get(tag, vr)
        length, header = struct.unpack(endian + "I", head[4:8])[0], 8
    elif head[4:6] in _LONG_VRS:
        if len(head) < 12:
            raise UnreadableDataset("pixel data element is truncated")
        length, header = struct.unpack(endian + "I", head[8:12])[0], 12
        vr = head[4:6].decode("latin-1")
    else:
        length, header = struct.unpack(endian + "H", head[6:8])[0], 8
        vr = head[4:6].decode("latin-1", "replace")
    known = tag in _PIXEL_TAGS
    if length != 0xFFFFFFFF:
        if pos + header + length > size:
            raise UnreadableDataset("pixel data is truncated")
        return PixelDataLocation(tag, vr, pos + header, length, False) if known else None
    offset = start = pos + header
    while True:  # encapsulated fragments are always little endian
        fp.seek(offset)
        item = fp.read(8)
        if len(item) < 8:
            raise UnreadableDataset("encapsulated pixel data is truncated")
        group, element, length = struct.unpack("<HHI", item)
        if (group, element) == _SEQUENCE_END:
            return PixelDataLocation(tag, "OB", start, offset + 8 - start, True) if known \
                else None
        if (group, element) != _ITEM or offset + 8 + length > size:
            raise UnreadableDataset("encapsulated pixel data is truncated")
        offset += 8 + length


def normalise_name(value: str) -> str:
    """Person names for case-insensitive matching: the alphabetic group, upper case."""
    return value.split("=", 1)[0].strip().upper()
