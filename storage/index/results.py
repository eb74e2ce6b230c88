"""Index rows → response datasets with exactly the requested keys (PS3.4 C.2.2.2 / C.4.1.2.3)."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence
from functools import lru_cache
from typing import Any

from pydicom.datadict import dictionary_VR, tag_for_keyword

from storage.index.match import BINARY_VRS, Match, RowMatch, RowShape
from storage.index.query import ATTRS, DEPTH, UNIQUE_KEY, Level, allowed


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


def _value(attr: Any, value: Any) -> Any:
    if attr.kind == "modalities":
        return _split_modalities(value)
    return value


def columns(level: Level, keys: Iterable[str]) -> list[Any]:
    """The index columns holding the requested keys, in the order :func:`from_columns`
    reads them: selecting only these (rather than whole entities) keeps a large answer
    cheap."""
    return [attr.source for _k, _t, _vr, attr in _plan(level, tuple(keys)) if attr is not None]


@lru_cache(maxsize=256)
def _text_layout(level: Level, keys: tuple[str, ...]) -> tuple[tuple[int, str], ...] | None:
    """``(tag, VR)`` of a column-only match when every one is a text VR (for
    :attr:`Match.layout`); ``None`` when some index column is binary (Rows, Columns)."""
    layout = tuple((tag, vr) for _k, tag, vr, _attr in _plan(level, keys))
    return None if any(vr in BINARY_VRS for _tag, vr in layout) else layout


def column_reader(level: Level, keys: Iterable[str]) -> Callable[[Sequence[Any]], Match]:
    """:func:`from_columns` for every row of one query, with the per-key work (which tag,
    VR and conversion, the encoding layout) done once for the query rather than per row."""
    shape = tuple(keys)
    plan = _plan(level, shape)
    if any(attr is None for _k, _t, _vr, attr in plan):
        return lambda row: from_columns(level, shape, row)
    layout = _text_layout(level, shape)
    modalities = [attr.kind == "modalities" for _k, _t, _vr, attr in plan]
    if layout is not None:
        row_shape = RowShape(level, [(tag, vr, mod) for (_k, tag, vr, _attr), mod
                                     in zip(plan, modalities, strict=True)])
        return lambda row: RowMatch(row_shape, row)
    heads = [(tag, vr, mod) for (_k, tag, vr, _attr), mod in zip(plan, modalities, strict=True)]
    return lambda row: Match(level, [(tag, vr, _split_modalities(value) if mod else value)
                                     for (tag, vr, mod), value in zip(heads, row, strict=True)])


def _split_modalities(value: Any) -> list[str]:
    return [m for m in (value or "").split("\\") if m]


def from_columns(level: Level, keys: Iterable[str], values: Iterable[Any]) -> Match:
    """A match from one row of :func:`columns` (every key is an index column)."""
    row = iter(values)
    shape = tuple(keys)
    return Match(level, [(tag, vr, _value(attr, next(row)) if attr is not None else None)
                         for _k, tag, vr, attr in _plan(level, shape)],
                 layout=_text_layout(level, shape))


def build(level: Level, row: tuple[Any, ...], keys: Iterable[str],
          header_json: str | None) -> Match:
    """A match from whole index entities plus the stored header of one instance below
    (for keys the index has no column for), every requested key present, in tag order."""
    header = json.loads(header_json) if header_json else {}
    elements: list[tuple[int, str, Any]] = []
    from_header: dict[int, dict[str, Any]] = {}
    for _keyword, tag, vr, attr in _plan(level, tuple(keys)):
        if attr is not None:
            elements.append((tag, vr, _value(attr, getattr(row[DEPTH[attr.level]],
                                                           attr.source.key))))
            continue
        element = header.get(f"{tag:08X}")
        if element is not None:
            from_header[tag] = element
        else:
            elements.append((tag, vr, None))
    return Match(level, elements, from_header)
