"""Reading DICOM headers at ingest: never the pixel data, never a re-encode.

The received bytes are stored as they came; this module only reads what the index needs
(PS3.10 file meta, the main tags) and the DICOM JSON header without bulk data
(PS3.18 F.2), so metadata queries never touch object storage.
"""

from __future__ import annotations

import json
import logging
import os
import re
import struct
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from pydicom import config, dcmread, jsonrep
from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError
from pydicom.uid import UID
from pydicom.valuerep import VR

from storage.errors import DatasetDoesNotMatchSopClass, UnreadableDataset

log = logging.getLogger(__name__)

UID_RE = re.compile(r"^(0|[1-9][0-9]*)(\.(0|[1-9][0-9]*))*$")
"""PS3.5 9.1: components of digits without leading zeros, at most 64 characters."""

_BULK_INLINE_LIMIT = 1024
"""Binary values longer than this are sent as BulkDataURI, not inline (as Orthanc and
dcm4chee do); pydicom applies it to the binary VRs (OB, OD, OF, OL, OV, OW, UN)."""

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
            result = dataset_to_json(self.dataset, self.bulk_base())
            if self.pixel_data is not None:
                tag = f"{self.pixel_data.tag:08X}"
                result[tag] = {"vr": self.pixel_data.vr,
                               "BulkDataURI": f"{self.bulk_base()}/{tag}"}
            self._json = json.dumps(result, separators=(",", ":"))
        return self._json


def bulk_paths(ds: Dataset, prefix: str = "") -> dict[int, str]:
    """``id(element)`` → its path (``00880200/0/00281201``) for every element below ``ds``.

    Items are numbered from 0 (as Orthanc's bulk data routes do). :func:`dataset_to_json`
    finds the same paths as it walks; this map is for callers holding only an element.
    """
    paths: dict[int, str] = {}
    for elem in ds:
        path = f"{prefix}{elem.tag:08X}"
        paths[id(elem)] = path
        if elem.VR == "SQ":
            for index, item in enumerate(elem.value):
                paths.update(bulk_paths(item, f"{path}/{index}/"))
    return paths


_TEXT_VRS = frozenset({VR.AE, VR.AS, VR.CS, VR.DA, VR.DT, VR.LO, VR.LT, VR.SH, VR.ST, VR.TM,
                       VR.UC, VR.UI, VR.UR, VR.UT})
"""VRs whose DICOM JSON values are the decoded strings as pydicom holds them (PS3.18 F.2.3)."""

_NUMBER_VRS = frozenset({VR.DS, VR.IS, VR.FL, VR.FD, VR.SL, VR.SS, VR.SV, VR.UL, VR.US,
                         VR.UV})
"""VRs whose DICOM JSON values are JSON numbers (PS3.18 F.2.3.1)."""


def dataset_to_json(ds: Dataset, bulk_base: str = "") -> dict[str, Any]:
    """DICOM JSON of ``ds`` (PS3.18 F.2) with large binary values as BulkDataURI.

    Each URI is ``{bulk_base}/{path}`` (:func:`bulk_paths`); without ``bulk_base`` large
    values are left out instead. Elements whose values cannot be represented (e.g. an IS
    of "1A", or a bad value inside a sequence item) are left out of the JSON header; the
    stored object keeps them as received.

    The result is exactly what pydicom's ``Dataset.to_json_dict(bulk_data_threshold=1024,
    bulk_data_element_handler=…, suppress_invalid_tags=True)`` gives, built in one walk
    that knows each element's path as it goes: the text and number elements that make up
    almost every header are written directly, the rest (person names, binary values,
    attribute tags) by pydicom's own per-element code. This runs for every stored instance,
    and pydicom's generic walk plus a separate pass for the bulk data paths cost about as
    much as parsing the header.
    """
    result: dict[str, Any] = {}
    # Values are converted while walking. A stored header (with ``bulk_base``) keeps the
    # reading mode its parse had (pydicom's WARN: a UID with a leading zero inside a
    # sequence item is kept, as the stored object keeps it); other datasets (MPPS
    # attributes) are converted strictly, and a bad value inside an item drops the sequence.
    with nullcontext() if bulk_base else config.strict_reading():
        for elem in ds.elements():
            tag = f"{elem.tag:08X}"
            try:
                if not isinstance(elem, DataElement):  # not converted yet
                    elem = ds[elem.tag]
                result[tag] = _element_json(elem, bulk_base, tag)
            except Exception:  # as suppress_invalid_tags: the element is left out
                log.debug("element %s left out of the JSON header", tag)
    return result


def _element_json(elem: DataElement, bulk_base: str, path: str) -> dict[str, Any]:
    vr = elem.VR
    if vr in _TEXT_VRS or vr in _NUMBER_VRS:
        value = elem.value
        if value is None or value == "":
            return {"vr": vr}
        if isinstance(value, str | bytes | int | float):
            values = [value]
        else:
            values = list(value)
            if not values:
                return {"vr": vr}
        if vr in _NUMBER_VRS:
            values = jsonrep.convert_to_python_number(values, vr)
        return {"vr": vr, "Value": values}
    if vr == VR.SQ:
        return {"vr": vr, "Value": [_item_json(item, bulk_base, f"{path}/{index}/")
                                    for index, item in enumerate(elem.value)]}

    def reference(_element: DataElement) -> str:
        # PS3.18 8.7.3 / F.2.6: bulk data is referenced, WADO-RS serves it from the object.
        return f"{bulk_base}/{path}" if bulk_base else ""

    json_element: dict[str, Any] = elem.to_json_dict(reference, _BULK_INLINE_LIMIT)
    if json_element.get("BulkDataURI") == "":
        del json_element["BulkDataURI"]
    return json_element


def _item_json(item: Dataset, bulk_base: str, prefix: str) -> dict[str, Any]:
    # Unlike the top level, an error here is not caught: it drops the whole sequence.
    return {f"{elem.tag:08X}": _element_json(elem, bulk_base, f"{prefix}{elem.tag:08X}")
            for elem in item}


@contextmanager
def _opened(source: str | Path | BinaryIO) -> Iterator[BinaryIO]:
    if isinstance(source, str | Path):
        with open(source, "rb") as fp:
            yield fp
    else:
        yield source


def read_header(path: str | Path | BinaryIO) -> Header:
    """Parse the header of the Part 10 file at ``path`` and check its Type 1 UIDs.

    ``path`` may also be a file opened in binary mode at its start (left open): the
    archive reads a received file through a handle while the object store renames it.

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
            ds = dcmread(fp, stop_before_pixels=True)
            # Touch every top-level element now so a corrupt header fails here, not later
            # while building responses.
            for _elem in ds:
                pass
            meta = ds.file_meta
            ts = UID(str(meta.get("TransferSyntaxUID", "") or ""))
            implicit, little = ds.original_encoding
            pixels = None
            if ts and not ts.is_deflated and implicit is not None:
                pixels = _check_pixel_data(fp, fp.tell(), os.fstat(fp.fileno()).st_size,
                                           bool(implicit), bool(little),
                                           int(ds.get("BitsAllocated") or 16))
            elif ts and ts.is_deflated and "Rows" in ds and "Columns" in ds:
                # An image whose pixel data is inside the deflated stream (PS3.5 A.5).
                bits = int(ds.get("BitsAllocated") or 16)
                pixels = PixelDataLocation(0x7FE00010, "OW" if bits > 8 else "OB", None, None,
                                           False)
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
        pixel_data=pixels,
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
