"""Index rows → response datasets with exactly the requested keys (PS3.4 C.2.2.2 / C.4.1.2.3)."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from pydicom.datadict import dictionary_VR, tag_for_keyword
from pydicom.dataset import Dataset

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


def _column_value(row: tuple[Any, ...], keyword: str) -> Any:
    attr = ATTRS[keyword]
    entity = row[DEPTH[attr.level]]
    value = getattr(entity, attr.source.key)
    if attr.kind == "modalities":
        return [m for m in (value or "").split("\\") if m]
    return value


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
          header_json: str | None) -> Dataset:
    """One match as a dataset holding every requested key (empty when unknown)."""
    ds = Dataset()
    header = json.loads(header_json) if header_json else {}
    non_ascii = False
    for keyword in keys:
        if keyword in ("QueryRetrieveLevel", "SpecificCharacterSet"):
            continue
        if allowed(level, keyword):
            value = _column_value(row, keyword)
            non_ascii = non_ascii or (isinstance(value, str) and not value.isascii())
            _set(ds, keyword, value)
            continue
        tag = tag_for_keyword(keyword)
        if tag is None:
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
    return ds
