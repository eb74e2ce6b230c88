"""Index rows → response datasets with exactly the requested keys (PS3.4 C.2.2.2 / C.4.1.2.3)."""

from __future__ import annotations

import json
from collections.abc import Iterable
from functools import lru_cache
from typing import Any

from pydicom.datadict import dictionary_VR, tag_for_keyword
from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset
from pydicom.tag import Tag

from storage.index.query import ATTRS, DEPTH, UNIQUE_KEY, Level, allowed


def _set(ds: Dataset, keyword: str, value: Any) -> None:
    tag = tag_for_keyword(keyword)
    if tag is None:
        return
    vr = dictionary_VR(tag)
    if value in ("", None) or (vr == "SQ" and not value):
        ds.add_new(tag, vr, [] if vr == "SQ" else None)
    else:
        ds.add_new(tag, vr, value)


_TEXT_VRS = {"AE", "AS", "CS", "DA", "DS", "DT", "IS", "LO", "LT", "PN", "SH", "ST", "TM",
             "UC", "UI", "UR", "UT"}


def _raw(tag: int, vr: str, value: Any, encoding: tuple[bool, bool]) -> RawDataElement:
    """An element already encoded for the wire (index values are plain text and numbers).

    pydicom writes raw elements as they are when the dataset's original encoding is the
    target encoding, so a C-FIND match is not re-encoded element by element: pydicom's
    generic writer costs more than the whole query for a large result set.
    """
    if value is None:
        text = ""
    elif isinstance(value, list | tuple):
        text = "\\".join(str(v) for v in value)
    else:
        text = str(value)
    data = text.encode("utf-8")
    if len(data) % 2:
        data += b"\0" if vr == "UI" else b" "
    implicit, little = encoding
    return RawDataElement(Tag(tag), vr, len(data), data, 0, implicit, little)


@lru_cache(maxsize=256)
def _plan(level: Level, keys: tuple[str, ...]) -> list[tuple[str, int, str, Any]]:
    """``(keyword, tag, VR, index attribute or None)`` per returnable key, worked out once
    per distinct query shape rather than once per match."""
    plan = []
    for keyword in keys:
        tag = tag_for_keyword(keyword)
        if tag is None or keyword in ("QueryRetrieveLevel", "SpecificCharacterSet"):
            continue
        plan.append((keyword, tag, dictionary_VR(tag),
                     ATTRS[keyword] if allowed(level, keyword) else None))
    return plan


def response_keys(level: Level, requested: Iterable[str]) -> list[str]:
    """The requested keys plus the unique key of the level and every level above it."""
    keys = list(dict.fromkeys(requested))
    for lv, unique in UNIQUE_KEY.items():
        if DEPTH[lv] <= DEPTH[level] and unique not in keys and lv != Level.PATIENT:
            keys.append(unique)
    if level == Level.PATIENT and "PatientID" not in keys:
        keys.append("PatientID")
    return keys


def needs_header(level: Level, keys: Iterable[str]) -> bool:
    """Whether some key is not an index column and must come from a stored header."""
    return any(not allowed(level, k) for k in keys if k not in ("QueryRetrieveLevel",
                                                                 "SpecificCharacterSet"))


def build(level: Level, row: tuple[Any, ...], keys: Iterable[str],
          header_json: str | None, encoding: tuple[bool, bool] | None = None) -> Dataset:
    """One match as a dataset holding every requested key (empty when unknown).

    With ``encoding`` (implicit VR, little endian) the index values are pre-encoded for
    that transfer syntax (see :func:`_raw`).
    """
    ds = Dataset()
    header = json.loads(header_json) if header_json else {}
    non_ascii = False
    for keyword, tag, vr, attr in _plan(level, tuple(keys)):
        if attr is not None:
            value = getattr(row[DEPTH[attr.level]], attr.source.key)
            if attr.kind == "modalities":
                value = [m for m in (value or "").split("\\") if m]
            non_ascii = non_ascii or (isinstance(value, str) and not value.isascii())
            if encoding is None or vr not in _TEXT_VRS:
                _set(ds, keyword, value)
            else:
                ds[tag] = _raw(tag, vr, value, encoding)  # type: ignore[index]
            continue
        element = header.get(f"{tag:08X}")
        if element is not None:
            sub = Dataset.from_json({f"{tag:08X}": element})
            ds.add(sub[tag])
            non_ascii = non_ascii or not json.dumps(element, ensure_ascii=False).isascii()
        else:
            _set(ds, keyword, None)
    ds.QueryRetrieveLevel = level.value
    if non_ascii:
        ds.SpecificCharacterSet = "ISO_IR 192"
    if encoding is not None:
        ds.set_original_encoding(encoding[0], encoding[1], ds._character_set)
    return ds
