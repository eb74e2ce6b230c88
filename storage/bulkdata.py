"""Bulk data values of archived instances (PS3.18 8.7.3 / 10.4, BulkDataURI targets).

Stored JSON headers reference binary values longer than 1 KiB by a tag path
(:func:`storage.dicomjson.bulk_paths`): tags and 0-based item numbers, such as
``00880200/0/7FE00010``. Those elements are all in the header, before the pixel data, so
they are read with ``stop_before_pixels``; pixel data itself is served by
:mod:`storage.frames`.
"""

from __future__ import annotations

import re
from typing import BinaryIO

import numpy as np
from pydicom import dcmread
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError

from storage.errors import InvalidQuery, NotFound, UnreadableDataset

BINARY_VRS = frozenset({"OB", "OD", "OF", "OL", "OV", "OW", "UN"})
_WIDTH = {"OW": 2, "OF": 4, "OL": 4, "OD": 8, "OV": 8}
_TAG = re.compile(r"^[0-9A-Fa-f]{8}$")
_INDEX = re.compile(r"^[0-9]{1,6}$")


def parse_path(path: str) -> list[int]:
    """``"00880200/0/7FE00010"`` → ``[0x00880200, 0, 0x7FE00010]``.

    Raises
    ------
    InvalidQuery
        Not tags and item numbers alternating, starting and ending with a tag (400).
    """
    segments = path.strip("/").split("/")
    if len(segments) % 2 == 0 or not all(
            (_TAG if i % 2 == 0 else _INDEX).match(seg) for i, seg in enumerate(segments)):
        raise InvalidQuery("a bulk data path is tags (8 hex digits) and item numbers "
                           "separated by '/', starting and ending with a tag")
    return [int(seg, 16) if i % 2 == 0 else int(seg) for i, seg in enumerate(segments)]


def read_bulk_value(fh: BinaryIO, path: list[int]) -> bytes:
    """The value of the binary element at ``path``, little endian (PS3.18 8.7.3.3.2).

    Raises
    ------
    NotFound
        No such element, or it is not a binary (bulk data) element.
    """
    try:
        ds: Dataset = dcmread(fh, stop_before_pixels=True, force=True)
        little = ds.original_encoding[1] is not False
        for depth in range(0, len(path) - 1, 2):
            tag, index = path[depth], path[depth + 1]
            if tag not in ds or ds[tag].VR != "SQ" or index >= len(ds[tag].value):
                raise NotFound("no such bulk data element")
            ds = ds[tag].value[index]
        if path[-1] not in ds:
            raise NotFound("no such bulk data element")
        elem = ds[path[-1]]
    except (InvalidDicomError, ValueError, TypeError, KeyError, EOFError) as exc:
        raise UnreadableDataset(f"the stored object cannot be parsed: {type(exc).__name__}") \
            from exc
    if elem.VR not in BINARY_VRS or not isinstance(elem.value, bytes | bytearray):
        raise NotFound("the element is not bulk data")
    value = bytes(elem.value)
    width = _WIDTH.get(elem.VR)
    if not little and width and len(value) % width == 0:
        value = np.frombuffer(value, dtype=f">u{width}").astype(f"<u{width}").tobytes()
    return value
