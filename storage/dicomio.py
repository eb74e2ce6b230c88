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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from pydicom import dcmread
from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError
from pydicom.uid import UID

from storage.errors import DatasetDoesNotMatchSopClass, UnreadableDataset

UID_RE = re.compile(r"^(0|[1-9][0-9]*)(\.(0|[1-9][0-9]*))*$")
"""PS3.5 9.1: components of digits without leading zeros, at most 64 characters."""

_BULK_VRS = {"OB", "OD", "OF", "OL", "OV", "OW", "UN"}
_BULK_INLINE_LIMIT = 1024


def is_valid_uid(value: str) -> bool:
    return 0 < len(value) <= 64 and UID_RE.match(value) is not None


@dataclass
class Header:
    """What the index keeps of one instance."""

    dataset: Dataset
    transfer_syntax_uid: str
    sop_class_uid: str
    sop_instance_uid: str
    study_uid: str
    series_uid: str
    _json: str | None = field(default=None, repr=False)

    def text(self, keyword: str) -> str:
        value = self.dataset.get(keyword, "")
        if value is None:
            return ""
        if isinstance(value, list | tuple) or type(value).__name__ == "MultiValue":
            return "\\".join(str(v) for v in value)
        return str(value).strip()

    def integer(self, keyword: str) -> int | None:
        value = self.dataset.get(keyword)
        try:
            return int(value) if value not in (None, "") else None
        except (TypeError, ValueError):
            return None

    def metadata_json(self) -> str:
        """The DICOM JSON header without bulk data (built once)."""
        if self._json is None:
            self._json = json.dumps(dataset_to_json(self.dataset), separators=(",", ":"))
        return self._json


def _drop_bulk(element: DataElement) -> str:
    # Bulk data is referenced, not inlined: WADO-RS serves it from the object (PS3.18 8.7.3).
    return ""


def dataset_to_json(ds: Dataset) -> dict[str, Any]:
    """DICOM JSON of ``ds`` with bulk data (pixel data, large binary values) left out."""
    # Elements whose values cannot be represented (e.g. an IS of "1A") are left out of the
    # JSON header; the stored object keeps them as received.
    result: dict[str, Any] = ds.to_json_dict(
        bulk_data_threshold=_BULK_INLINE_LIMIT, bulk_data_element_handler=_drop_bulk,
        suppress_invalid_tags=True,
    )
    for tag in [t for t, v in result.items() if v.get("BulkDataURI") == ""]:
        del result[tag]["BulkDataURI"]
    return result


def read_header(path: str | Path) -> Header:
    """Parse the header of the Part 10 file at ``path`` and check its Type 1 UIDs.

    Raises
    ------
    UnreadableDataset
        The bytes are not a DICOM dataset pydicom can parse.
    DatasetDoesNotMatchSopClass
        SOP Class, SOP Instance, Study or Series Instance UID is missing or malformed
        (PS3.4 B.2.3: status A900 "Data Set does not match SOP Class").
    """
    try:
        with open(path, "rb") as fp:
            ds = dcmread(fp, stop_before_pixels=True)
            # Touch every top-level element now so a corrupt header fails here, not later
            # while building responses.
            for _elem in ds:
                pass
            meta = ds.file_meta
            ts = UID(str(meta.get("TransferSyntaxUID", "") or ""))
            implicit, little = ds.original_encoding
            if ts and not ts.is_deflated and implicit is not None:
                _check_pixel_data(fp, fp.tell(), os.fstat(fp.fileno()).st_size,
                                  bool(implicit), bool(little))
    except (InvalidDicomError, ValueError, TypeError, KeyError, EOFError, OSError,
            struct.error) as exc:
        raise UnreadableDataset(f"dataset cannot be parsed: {type(exc).__name__}") from exc
    # pydicom reads garbage on as unknown elements. If the encoding contradicts the transfer
    # syntax, or not one identifying UID is there, the bytes cannot be understood (0xC000);
    # otherwise a missing or malformed UID is a dataset that does not match (0xA900).
    garbled = (bool(ts) and not ts.is_deflated and ds.original_encoding[0] != ts.is_implicit_VR
               ) or not any(k in ds for k in ("SOPClassUID", "SOPInstanceUID",
                                               "StudyInstanceUID", "SeriesInstanceUID"))
    if len(ds) == 0:
        raise UnreadableDataset("dataset is empty")

    def uid(keyword: str, fallback: str = "") -> str:
        value = str(ds.get(keyword, "") or fallback).strip().rstrip("\0")
        error = UnreadableDataset if garbled else DatasetDoesNotMatchSopClass
        if not value:
            raise error(f"{keyword} is missing")
        if not is_valid_uid(value):
            raise error(f"{keyword} is not a valid UID")
        return value

    if not ts:
        raise UnreadableDataset("transfer syntax unknown")
    sop_class = uid("SOPClassUID", str(meta.get("MediaStorageSOPClassUID", "")))
    sop_instance = uid("SOPInstanceUID", str(meta.get("MediaStorageSOPInstanceUID", "")))
    return Header(
        dataset=ds,
        transfer_syntax_uid=str(ts),
        sop_class_uid=sop_class,
        sop_instance_uid=sop_instance,
        study_uid=uid("StudyInstanceUID"),
        series_uid=uid("SeriesInstanceUID"),
    )


_LONG_VRS = {b"OB", b"OD", b"OF", b"OL", b"OV", b"OW", b"SQ", b"UC", b"UN", b"UR", b"UT"}
_ITEM, _SEQUENCE_END = (0xFFFE, 0xE000), (0xFFFE, 0xE0DD)


def _check_pixel_data(fp: BinaryIO, pos: int, size: int, implicit: bool, little: bool) -> None:
    """Refuse a dataset whose Pixel Data runs past the end of the received bytes.

    The header read stops before the pixel data, so a value cut short in transfer would
    otherwise be archived as if whole. Walks the element header (and, for encapsulated
    data, the fragment items up to the Sequence Delimitation Item, PS3.5 A.4) without
    reading the pixels.
    """
    fp.seek(pos)
    head = fp.read(12)
    if len(head) < 8:
        return  # no pixel data
    endian = "<" if little else ">"
    if implicit:
        length, header = struct.unpack(endian + "I", head[4:8])[0], 8
    elif head[4:6] in _LONG_VRS:
        if len(head) < 12:
            raise UnreadableDataset("pixel data element is truncated")
        length, header = struct.unpack(endian + "I", head[8:12])[0], 12
    else:
        length, header = struct.unpack(endian + "H", head[6:8])[0], 8
    if length != 0xFFFFFFFF:
        if pos + header + length > size:
            raise UnreadableDataset("pixel data is truncated")
        return
    offset = pos + header
    while True:  # encapsulated fragments are always little endian
        fp.seek(offset)
        item = fp.read(8)
        if len(item) < 8:
            raise UnreadableDataset("encapsulated pixel data is truncated")
        group, element, length = struct.unpack("<HHI", item)
        if (group, element) == _SEQUENCE_END:
            return
        if (group, element) != _ITEM or offset + 8 + length > size:
            raise UnreadableDataset("encapsulated pixel data is truncated")
        offset += 8 + length


def normalise_name(value: str) -> str:
    """Person names for case-insensitive matching: the alphabetic group, upper case."""
    return value.split("=", 1)[0].strip().upper()
