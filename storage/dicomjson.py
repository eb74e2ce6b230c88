"""DICOM JSON (PS3.18 F.2) of datasets and of received headers, without bulk data.

Every stored instance keeps its header as DICOM JSON (WADO-RS ``/metadata``, QIDO,
C-FIND answers from the index), so this runs once per received instance and its cost is
a large part of ingest. The output is exactly what pydicom's generic
``Dataset.to_json_dict(bulk_data_threshold=1024, bulk_data_element_handler=…,
suppress_invalid_tags=True)`` gives (tests/unit/test_dicom_json.py compares them over
every file pydicom ships), built faster in two ways:

* one walk that knows each element's path as it goes (pydicom's handler is given only the
  element, so the paths needed a separate pass over the whole dataset);
* the plain text and number elements that make up almost every header (UIDs, codes,
  dates, names of things, pixel geometry) go from their received bytes straight to JSON
  values, by the same rules pydicom's converters apply, without building pydicom data
  elements, and so do person names in the default repertoire, Latin-1 or UTF-8 without
  escape sequences; anything else (sequences, binary values, tags, non-ASCII text,
  other character sets, values pydicom would have to judge) is converted by pydicom.
"""

from __future__ import annotations

import functools
import logging
import re
import struct
from contextlib import nullcontext
from dataclasses import dataclass
from typing import Any

from pydicom import config, jsonrep
from pydicom.datadict import tag_for_keyword
from pydicom.dataelem import DataElement, RawDataElement
from pydicom.dataset import Dataset
from pydicom.valuerep import VR

log = logging.getLogger(__name__)

BULK_INLINE_LIMIT = 1024
"""Binary values longer than this are sent as BulkDataURI, not inline (as Orthanc and
dcm4chee do); pydicom applies it to the binary VRs (OB, OD, OF, OL, OV, OW, UN)."""

TEXT_VRS = frozenset({VR.AE, VR.AS, VR.CS, VR.DA, VR.DT, VR.LO, VR.LT, VR.SH, VR.ST, VR.TM,
                       VR.UC, VR.UI, VR.UR, VR.UT})
"""VRs whose DICOM JSON values are the decoded strings as pydicom holds them (PS3.18 F.2.3)."""

NUMBER_VRS = frozenset({VR.DS, VR.IS, VR.FL, VR.FD, VR.SL, VR.SS, VR.SV, VR.UL, VR.US,
                         VR.UV})
"""VRs whose DICOM JSON values are JSON numbers (PS3.18 F.2.3.1)."""


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


def dataset_to_json(ds: Dataset, bulk_base: str = "") -> dict[str, Any]:
    """DICOM JSON of ``ds`` (PS3.18 F.2) with large binary values as BulkDataURI.

    Each URI is ``{bulk_base}/{path}`` (:func:`bulk_paths`); without ``bulk_base`` large
    values are left out instead. Elements whose values cannot be represented (e.g. an IS
    of "1A", or a bad value inside a sequence item) are left out of the JSON; the stored
    object keeps them as received.
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


@dataclass
class CheckedHeader:
    """The top-level elements of a parsed header, every one converted once.

    ``ready`` holds the DICOM JSON of the elements converted straight from their bytes
    (left raw in the dataset); the others were converted by pydicom in the dataset and
    get their JSON in :meth:`to_json`, once the bulk data route is known.
    """

    dataset: Dataset
    tags: list[int]
    ready: dict[int, dict[str, Any]]

    def to_json(self, bulk_base: str) -> dict[str, Any]:
        """The header's DICOM JSON, as :func:`dataset_to_json` gives it."""
        result: dict[str, Any] = {}
        for tag in self.tags:
            key = f"{tag:08X}"
            ready = self.ready.get(tag)
            if ready is not None:
                result[key] = ready
                continue
            try:
                result[key] = _element_json(self.dataset[tag], bulk_base, key)
            except Exception:  # as suppress_invalid_tags: the element is left out
                log.debug("element %s left out of the JSON header", key)
        return result


    def single(self, keyword: str) -> Any:
        """The one value of an element converted from its bytes, ``""`` if it is empty;
        ``None`` if it is absent, multi-valued or was converted by pydicom."""
        tag = tag_of(keyword)
        ready = self.ready.get(tag) if tag is not None else None
        if ready is None:
            return None
        values = ready.get("Value")
        if not values:
            return ""
        return values[0] if len(values) == 1 else None


@functools.cache
def tag_of(keyword: str) -> int | None:
    """The tag of a DICOM keyword (PS3.6), remembered."""
    return tag_for_keyword(keyword)


def check_header(ds: Dataset) -> CheckedHeader:
    """Convert every top-level element of a dataset just read, so a corrupt one fails now.

    Raises what pydicom's conversion raises for an element it cannot decode (a number
    value of the wrong length, an unknown VR); the header reader turns that into
    "unreadable". Elements that need no judgement are converted to their JSON values
    directly from the bytes.
    """
    tags: list[int] = []
    ready: dict[int, dict[str, Any]] = {}
    fast = not (config.datetime_conversion or config.use_DS_numpy or config.use_IS_numpy
                or config.use_DS_decimal or config.use_none_as_empty_text_VR_value)
    # Person names only where decoding is one codec call pydicom would make too, and
    # pydicom's validation of names could only warn.
    names = ds._character_set if fast else None
    if isinstance(names, list):
        names = names[0] if len(names) == 1 else None
    codec = names if isinstance(names, str) else None
    if codec not in _PN_CODECS or \
            config.settings.reading_validation_mode == config.RAISE:
        codec = None
    for elem in ds.elements():
        tag = int(elem.tag)
        tags.append(tag)
        if isinstance(elem, RawDataElement):
            value = _raw_json(elem, codec) if fast else None
            if value is not None:
                ready[tag] = value
            else:
                ds[tag]  # noqa: B018 - pydicom's conversion, kept in the dataset
    return CheckedHeader(ds, tags, ready)


_SPLIT_THEN_STRIP = frozenset({VR.LO, VR.SH, VR.UC})
_STRIP_THEN_SPLIT = frozenset({VR.AS, VR.CS, VR.DA, VR.DT, VR.TM, VR.UI})
_SINGLE_TEXT = frozenset({VR.LT, VR.ST, VR.UT})
_BINARY_NUMBERS = {VR.US: "H", VR.UL: "L", VR.SS: "h", VR.SL: "l", VR.FL: "f", VR.FD: "d"}
_LUT_DESCRIPTORS = frozenset({0x00281101, 0x00281102, 0x00281103, 0x00283002})
"""LUT Descriptors, whose first value pydicom reads as unsigned whatever the VR says."""
_PN_CODECS = frozenset({"iso8859", "latin_1", "UTF8"})
"""Python codecs of the default repertoire, ISO_IR 100 and ISO_IR 192 (pydicom.charset):
without escape sequences pydicom decodes a name with the one codec, and encoding it
back (PersonName.encode) gives the same bytes, so the name's groups are those of the
decoded text."""
_PN_GROUPS = ("Alphabetic", "Ideographic", "Phonetic")
_IS_RE = re.compile(r" *[+-]?[0-9]+ *")
_DS_RE = re.compile(r" *[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)? *")


def _raw_json(raw: RawDataElement, codec: str | None = None) -> dict[str, Any] | None:
    """DICOM JSON of a raw element by pydicom's conversion rules, or ``None`` to let
    pydicom convert it.

    ``codec`` is the dataset's Python codec if person names may be decoded here
    (:func:`_pn_json`), else ``None``.

    The rules are those of ``pydicom.values`` for each VR: trailing padding removed
    (``\\0`` and spaces), multiple values split at backslashes, AE values stripped on both
    sides, DS/IS parsed as numbers. Only pure ASCII without escape sequences is taken,
    which every character set decodes alike (PS3.5 6.1).
    """
    vr, data = raw.VR, raw.value
    if vr is None or data is None or not isinstance(data, bytes):
        return None
    if not data:
        return {"vr": vr} if vr in TEXT_VRS or vr in NUMBER_VRS or \
            (vr == VR.PN and codec) else None
    if vr == VR.PN:
        return _pn_json(data, codec) if codec else None
    fmt = _BINARY_NUMBERS.get(vr)
    if fmt is not None:
        size = struct.calcsize("<" + fmt)  # standard sizes, not native ones
        if len(data) % size or raw.tag in _LUT_DESCRIPTORS:
            return None  # wrong length (pydicom raises), or a LUT descriptor it fixes up
        order = "<" if raw.is_little_endian else ">"
        return {"vr": vr, "Value": list(struct.unpack(f"{order}{len(data) // size}{fmt}",
                                                      data))}
    if not data.isascii() or b"\x1b" in data:
        return None
    text = data.decode("ascii")
    if vr in _STRIP_THEN_SPLIT:
        values = text.rstrip(" \x00").split("\\")
    elif vr in _SPLIT_THEN_STRIP:
        values = [v.rstrip("\x00 ") for v in text.split("\\")]
    elif vr in _SINGLE_TEXT:
        values = [text.rstrip("\x00 ")]
    elif vr == VR.AE:
        values = [v.strip() for v in text.split("\\")]
    elif vr == VR.IS:
        items = text.rstrip(" \x00").split("\\")
        if not all(_IS_RE.fullmatch(v) for v in items):
            return None
        return {"vr": vr, "Value": [int(v) for v in items]}
    elif vr == VR.DS:
        items = text.strip().rstrip(" \x00").split("\\")
        if not all(_DS_RE.fullmatch(v) for v in items):
            return None
        return {"vr": vr, "Value": [float(v) for v in items]}
    else:
        return None
    if len(values) == 1 and not values[0]:
        return {"vr": vr}
    return {"vr": vr, "Value": values}


def _pn_json(data: bytes, codec: str) -> dict[str, Any] | None:
    """DICOM JSON of a person name value as ``convert_PN`` and ``to_json_dict`` give it,
    or ``None`` to let pydicom convert it.

    pydicom strips trailing padding, decodes, splits the values at backslashes and each
    name at ``=`` into its groups (trailing empty groups dropped); JSON has at most three
    groups. Declined: escape sequences, bytes the codec refuses (pydicom would warn and
    replace), more than three groups (the index text would keep them), and an empty name
    among several (pydicom's JSON conversion fails on it).
    """
    if b"\x1b" in data:
        return None
    try:
        text = data.rstrip(b"\x00 ").decode(codec)
    except UnicodeDecodeError:
        return None
    names = text.split("\\")
    values = []
    for name in names:
        groups = name.split("=")
        while groups and not groups[-1]:
            groups.pop()
        if not groups:
            if len(names) == 1:
                return {"vr": VR.PN}
            return None
        if len(groups) > len(_PN_GROUPS):
            return None
        values.append(dict(zip(_PN_GROUPS, groups, strict=False)))
    return {"vr": VR.PN, "Value": values}


def _element_json(elem: DataElement, bulk_base: str, path: str) -> dict[str, Any]:
    vr = elem.VR
    if vr in TEXT_VRS or vr in NUMBER_VRS:
        value = elem.value
        if value is None or value == "":
            return {"vr": vr}
        if isinstance(value, str | bytes | int | float):
            values = [value]
        else:
            values = list(value)
            if not values:
                return {"vr": vr}
        if vr in NUMBER_VRS:
            values = jsonrep.convert_to_python_number(values, vr)
        return {"vr": vr, "Value": values}
    if vr == VR.SQ:
        return {"vr": vr, "Value": [_item_json(item, bulk_base, f"{path}/{index}/")
                                    for index, item in enumerate(elem.value)]}

    def reference(_element: DataElement) -> str:
        # PS3.18 8.7.3 / F.2.6: bulk data is referenced, WADO-RS serves it from the object.
        return f"{bulk_base}/{path}" if bulk_base else ""

    json_element: dict[str, Any] = elem.to_json_dict(reference, BULK_INLINE_LIMIT)
    if json_element.get("BulkDataURI") == "":
        del json_element["BulkDataURI"]
    return json_element


def _item_json(item: Dataset, bulk_base: str, prefix: str) -> dict[str, Any]:
    # Unlike the top level, an error here is not caught: it drops the whole sequence.
    return {f"{elem.tag:08X}": _element_json(elem, bulk_base, f"{prefix}{elem.tag:08X}")
            for elem in item}
