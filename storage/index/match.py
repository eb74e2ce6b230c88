"""One C-FIND / QIDO-RS match, written straight to the wire or to DICOM JSON.

A match is the requested keys of one entity: index values (plain text, numbers, lists)
plus, for keys the index has no column for, elements of the stored DICOM JSON header.
Answering a query used to build a pydicom Dataset per match and let pydicom encode it
(for C-FIND) or convert it to JSON (for QIDO-RS): that generic path cost more CPU than the
whole index query, about 0.3 ms per match. Index values are all text VRs, whose encoding
is simple (PS3.5 6.2, 7.1), so they are encoded here directly; header elements are already
DICOM JSON (PS3.18 F.2) and only go through pydicom for the binary C-FIND answer.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset
from pydicom.filebase import DicomBytesIO
from pydicom.filewriter import write_data_element
from pydicom.valuerep import EXPLICIT_VR_LENGTH_32

from storage.index.query import Level

QUERY_RETRIEVE_LEVEL = 0x00080052
SPECIFIC_CHARACTER_SET = 0x00080005
# VRs whose explicit-VR encoding has 2 reserved bytes and a 4-byte length (PS3.5 Table
# 7.1-1): an empty sequence asked for but absent from the header is written as SQ.
LONG_LENGTH_VRS = frozenset(str(vr) for vr in EXPLICIT_VR_LENGTH_32)
# Text VRs holding one value, where a backslash is part of the value (PS3.5 6.2).
SINGLE_VALUED_VRS = frozenset({"LT", "ST", "UT", "UR"})
_NUMBER_VRS = {"IS", "DS"}
# Binary numeric VRs some index columns have (Rows and Columns are US): struct codes.
_BINARY = {"US": "H", "SS": "h", "UL": "I", "SL": "i", "FL": "f", "FD": "d"}
BINARY_VRS = frozenset(_BINARY)


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, list | tuple):
        return "\\".join(str(v) for v in value)
    return str(value)


def _json_values(vr: str, value: Any) -> list[Any]:
    if isinstance(value, list | tuple):
        values = [v for v in value]
    elif vr in SINGLE_VALUED_VRS or not isinstance(value, str):
        values = [value]
    else:
        values = value.split("\\")
    if vr == "PN":
        out: list[Any] = []
        for name in values:
            groups = str(name).split("=")
            out.append({k: g for k, g in zip(("Alphabetic", "Ideographic", "Phonetic"), groups, strict=False)
                        if g})
        return out
    if vr in _NUMBER_VRS or vr in _BINARY:
        return [_number(v) for v in values]
    return values


def _number(value: Any) -> Any:
    if isinstance(value, int | float):
        return value
    text = str(value).strip()
    try:
        return int(text)
    except ValueError:
        return float(text)


@dataclass
class Match:
    """The requested keys of one matching entity, in the form the index keeps them.

    ``elements`` are ``(tag, VR, value)`` from index columns (text VRs only), ``header``
    maps a tag to its DICOM JSON element from the stored header.
    """

    level: Level
    elements: list[tuple[int, str, Any]]
    header: dict[int, dict[str, Any]] = field(default_factory=dict)
    layout: tuple[tuple[int, str], ...] | None = None
    """``(tag, VR)`` of ``elements`` when they are text values from index columns, shared by
    every match of one query: :meth:`encode` then works out tag order and element heads
    once per query shape (:func:`_layout`) instead of once per match."""

    def set(self, tag: int, vr: str, value: Any) -> None:
        """Add or replace a text element (e.g. RetrieveAETitle, RetrieveURL)."""
        self.header.pop(tag, None)
        self.elements = [e for e in self.elements if e[0] != tag] + [(tag, vr, value)]
        self.layout = None

    def get(self, tag: int) -> Any:
        for t, _vr, value in self.elements:
            if t == tag:
                return value
        return None

    def _non_ascii(self) -> bool:
        return any(isinstance(v, str) and not v.isascii() for _t, _vr, v in self.elements) or \
            any(not str(e).isascii() for e in self.header.values())

    # -- DICOM JSON (QIDO-RS) -------------------------------------------------------------
    def to_json(self) -> dict[str, Any]:
        """PS3.18 F.2 DICOM JSON, in tag order; empty values as ``{"vr": VR}``.

        QueryRetrieveLevel and SpecificCharacterSet are not part of a QIDO-RS answer
        (DICOM JSON is always UTF-8).
        """
        out: dict[int, dict[str, Any]] = dict(self.header)
        for tag, vr, value in self.elements:
            if value is None or value == "" or value == []:
                out[tag] = {"vr": vr}
            else:
                out[tag] = {"vr": vr, "Value": _json_values(vr, value)}
        return {f"{tag:08X}": out[tag] for tag in sorted(out)}

    # -- binary identifier (C-FIND) -------------------------------------------------------
    def encode(self, implicit_vr: bool, little_endian: bool) -> bytes:
        """The C-FIND response identifier (PS3.4 C.4.1.2.3) encoded for the transfer
        syntax of the presentation context: elements in ascending tag order (PS3.5 7.1),
        values padded to even length, UTF-8 declared by SpecificCharacterSet when needed.
        """
        if self.layout is not None and not self.header:
            fast = self._encode_ascii(implicit_vr, little_endian)
            if fast is not None:
                return fast
        encoded: dict[int, bytes] = {}
        non_ascii = False
        for tag, vr, value in self.elements:
            encoded[tag] = _element(tag, vr, value, implicit_vr, little_endian)
            if type(value) is str and not value.isascii():
                non_ascii = True
        encoded[QUERY_RETRIEVE_LEVEL] = _constant(QUERY_RETRIEVE_LEVEL, "CS", self.level.value,
                                                  implicit_vr, little_endian)
        if self.header:
            non_ascii = non_ascii or any(not str(e).isascii() for e in self.header.values())
            encoded.update(_header_elements(self.header, implicit_vr, little_endian))
        if non_ascii:
            encoded[SPECIFIC_CHARACTER_SET] = _constant(SPECIFIC_CHARACTER_SET, "CS",
                                                        "ISO_IR 192", implicit_vr, little_endian)
        return b"".join([encoded[tag] for tag in sorted(encoded)])

    def _encode_ascii(self, implicit_vr: bool, little_endian: bool) -> bytes | None:
        """:meth:`encode` for a match of text index values only, all ASCII (the usual
        case; ``None`` otherwise, as a non-ASCII value needs SpecificCharacterSet)."""
        assert self.layout is not None
        return _encode_text([value for _tag, _vr, value in self.elements],
                            _layout(self.layout, self.level, implicit_vr, little_endian))

    def to_dataset(self) -> Dataset:
        """The match as a pydicom Dataset (for callers that want one)."""
        ds = Dataset()
        if self._non_ascii():
            ds.SpecificCharacterSet = "ISO_IR 192"
        for tag, vr, value in self.elements:
            ds.add_new(tag, vr, None if value in ("", None, []) else value)
        for tag, element in self.header.items():
            ds.add(Dataset.from_json({f"{tag:08X}": element})[tag])
        ds.QueryRetrieveLevel = self.level.value
        return ds


@lru_cache(maxsize=4096)
def _head(tag: int, vr: str, implicit_vr: bool,
          little_endian: bool) -> tuple[bytes, struct.Struct, bytes]:
    """What every element of ``tag`` starts with (tag, and VR when explicit), the
    struct of its length field and its padding byte (PS3.5 7.1): worked out once per
    key rather than once per match."""
    e = "<" if little_endian else ">"
    tag_bytes = struct.pack(e + "HH", tag >> 16, tag & 0xFFFF)
    pad = b"\0" if vr == "UI" else b" "
    if implicit_vr:
        return tag_bytes, struct.Struct(e + "I"), pad
    if vr in LONG_LENGTH_VRS:
        return tag_bytes + vr.encode() + b"\0\0", struct.Struct(e + "I"), pad
    return tag_bytes + vr.encode(), struct.Struct(e + "H"), pad


def _element(tag: int, vr: str, value: Any, implicit_vr: bool, little_endian: bool) -> bytes:
    prefix, length, pad = _head(tag, vr, implicit_vr, little_endian)
    if vr in _BINARY:
        e = "<" if little_endian else ">"
        values = [] if value in (None, "") else value if isinstance(value, list) else [value]
        data = struct.pack(f"{e}{len(values)}{_BINARY[vr]}", *values)
    else:
        data = (value if type(value) is str else _text(value)).encode("utf-8")
        if len(data) % 2:
            data += pad
    return prefix + length.pack(len(data)) + data


_constant = lru_cache(maxsize=64)(_element)  # the same element in every match

_Layout = tuple[tuple[int, bytes, struct.Struct, bytes], ...]


@lru_cache(maxsize=256)
def _layout(elements: tuple[tuple[int, str], ...], level: Level, implicit_vr: bool,
            little_endian: bool) -> _Layout:
    """The elements of a match of this shape in ascending tag order (PS3.5 7.1), each as
    ``(position in Match.elements, head, length struct, padding)``; QueryRetrieveLevel is
    ``(-1, its whole encoding, …)``."""
    order: list[tuple[int, int, bytes, struct.Struct, bytes]] = []
    for index, (tag, vr) in enumerate(elements):
        if vr in _BINARY:
            raise ValueError(f"not a text VR: {vr}")
        order.append((tag, index, *_head(tag, vr, implicit_vr, little_endian)))
    qr = _constant(QUERY_RETRIEVE_LEVEL, "CS", level.value, implicit_vr, little_endian)
    if all(tag != QUERY_RETRIEVE_LEVEL for tag, _vr in elements):
        order.append((QUERY_RETRIEVE_LEVEL, -1, qr, struct.Struct("<I"), b""))
    order.sort(key=lambda item: item[0])
    return tuple(item[1:] for item in order)


def _encode_text(values: Sequence[Any], layout: _Layout) -> bytes | None:
    """Text ``values`` (in :attr:`Match.elements` order) as the elements of ``layout``;
    ``None`` if one is not ASCII."""
    parts = []
    try:
        for index, head, length, pad in layout:
            if index < 0:
                parts.append(head)  # QueryRetrieveLevel, encoded whole
                continue
            value = values[index]
            data = (value if type(value) is str else _text(value)).encode("ascii")
            if len(data) % 2:
                data += pad
            parts.append(head + length.pack(len(data)) + data)
    except UnicodeEncodeError:
        return None
    return b"".join(parts)


class RowShape:
    """The keys of every match of one query read from index columns alone, all text VRs,
    in the order the query selects them (``(tag, VR, is ModalitiesInStudy)`` each).

    The per-key work is done once per query here rather than once per match, and
    :class:`RowMatch` encodes a row as it came from the database: building a
    :class:`Match`'s element list first cost about as much as encoding it.
    """

    def __init__(self, level: Level, keys: Sequence[tuple[int, str, bool]]) -> None:
        self.level = level
        self.layout = tuple((tag, vr) for tag, vr, _modalities in keys)
        self._modalities = tuple(i for i, (_t, _vr, modalities) in enumerate(keys) if modalities)
        self._encodings: dict[tuple[bool, bool], _Layout] = {}

    def values(self, row: Sequence[Any]) -> Sequence[Any]:
        """The row with ModalitiesInStudy (stored ``\\CT\\MR\\``) as a list."""
        if not self._modalities:
            return row
        values = list(row)
        for i in self._modalities:
            values[i] = [m for m in (values[i] or "").split("\\") if m]
        return values

    def encode(self, row: Sequence[Any], implicit_vr: bool, little_endian: bool) -> bytes | None:
        """:meth:`Match.encode` of this row when it is all ASCII, else ``None``."""
        layout = self._encodings.get((implicit_vr, little_endian))
        if layout is None:
            layout = _layout(self.layout, self.level, implicit_vr, little_endian)
            self._encodings[(implicit_vr, little_endian)] = layout
        return _encode_text(self.values(row), layout)


class RowMatch(Match):
    """A :class:`Match` holding the row it was read from: :meth:`encode` writes the row
    directly (:meth:`RowShape.encode`); the element list is made only when asked for
    (:meth:`set`, :meth:`to_json`, a non-ASCII value)."""

    def __init__(self, shape: RowShape, row: Sequence[Any]) -> None:  # noqa: D107
        self.level = shape.level
        self.header = {}
        self.layout = shape.layout
        self._shape = shape
        self._row = row
        self._elements: list[tuple[int, str, Any]] | None = None

    @property  # type: ignore[override]
    def elements(self) -> list[tuple[int, str, Any]]:
        if self._elements is None:
            self._elements = [(tag, vr, value) for (tag, vr), value
                              in zip(self._shape.layout, self._shape.values(self._row),
                                     strict=True)]
        return self._elements

    @elements.setter
    def elements(self, value: list[tuple[int, str, Any]]) -> None:
        self._elements = value

    def encode(self, implicit_vr: bool, little_endian: bool) -> bytes:
        if self._elements is None:
            fast = self._shape.encode(self._row, implicit_vr, little_endian)
            if fast is not None:
                return fast
        return super().encode(implicit_vr, little_endian)


def _header_elements(header: dict[int, dict[str, Any]], implicit_vr: bool,
                     little_endian: bool) -> dict[int, bytes]:
    """Header elements (any VR, sequences included) encoded by pydicom, one by one."""
    out = {}
    for tag, element in header.items():
        elem: DataElement = Dataset.from_json({f"{tag:08X}": element})[tag]
        fp = DicomBytesIO()
        fp.is_implicit_VR, fp.is_little_endian = implicit_vr, little_endian
        write_data_element(fp, elem, ["utf8"])
        out[tag] = fp.getvalue()
    return out
