"""Whether two Part 10 files hold the same data set, whatever their File Meta Information.

The same instance reaches the archive with different File Meta groups depending on the
way it came: a C-STORE receiver writes its own (Implementation Class UID, no Source AE
Title), the modality's original file has another. PS3.10 7.1 keeps the File Meta
Information outside the data set, so two files whose data set bytes (and transfer
syntax) are equal hold the same instance. dcm4chee-arc reaches the same answer by
digesting files whose File Meta group it writes itself; Orthanc does not compare
contents at all (the first instance received wins unless ``OverwriteInstances``).

Only read when the whole-file SHA-256 differs (a rare path): the data set bytes are
compared as they stream, so the stored object is read once and the comparison stops at
the first difference.
"""

from __future__ import annotations

import os
import struct
from typing import Protocol

from storage.index.match import LONG_LENGTH_VRS

_CHUNK = 1 << 20
_PREFIX = 132
"""Preamble (128 bytes) and ``DICM`` (PS3.10 7.1)."""
_META_LIMIT = 1 << 20
"""A File Meta group longer than this is not compared (the files count as different)."""


class Readable(Protocol):
    def read(self, size: int = -1, /) -> bytes: ...


class FileAt:
    """Reads an open file by position (``os.pread``), leaving its offset alone.

    The archive compares the received file through the descriptor it parsed the header
    from: the path may have been renamed into the object store meanwhile, and other
    readers of the descriptor keep their position.
    """

    def __init__(self, fd: int) -> None:
        self._fd = fd
        self._pos = 0

    def read(self, size: int = -1, /) -> bytes:
        if size < 0:
            size = max(os.fstat(self._fd).st_size - self._pos, 0)
        data = os.pread(self._fd, size, self._pos)
        self._pos += len(data)
        return data


def _read_full(stream: Readable, size: int) -> bytes:
    """``size`` bytes, fewer only at the end: a network body returns what has arrived."""
    parts, left = [], size
    while left > 0:
        data = stream.read(left)
        if not data:
            break
        parts.append(data)
        left -= len(data)
    return b"".join(parts)


def data_set_start(head: bytes, *, whole: bool = False) -> int | None:
    """Offset of the first data set byte in a file beginning with ``head`` (``whole``:
    ``head`` is the whole file).

    After the preamble, ``DICM`` and every group 0x0002 element (always Explicit VR
    Little Endian, PS3.10 7.1); 0 for a bare data set without them. The group is walked
    element by element, not skipped by its Group Length (0002,0000), which some writers
    omit or get wrong. ``None`` if ``head`` ends within the File Meta group.
    """
    if head[128:_PREFIX] != b"DICM":
        return 0
    pos = _PREFIX
    while True:
        if len(head) < pos + 8:
            return pos if whole and len(head) == pos else None
        group, _element, vr = struct.unpack_from("<HH2s", head, pos)
        if group != 0x0002:
            return pos
        if vr.decode("latin-1") in LONG_LENGTH_VRS:
            if len(head) < pos + 12:
                return None
            pos += 12 + struct.unpack_from("<L", head, pos + 8)[0]
        else:
            pos += 8 + struct.unpack_from("<H", head, pos + 6)[0]
        if pos > len(head):
            return None


def _data_set(stream: Readable, size: int) -> tuple[bytes, int] | None:
    """``(first data set bytes read, data set length)`` of a file of ``size`` bytes,
    the stream left after those bytes; ``None`` if its File Meta group cannot be read."""
    head = _read_full(stream, 4096)
    while (start := data_set_start(head, whole=len(head) >= size)) is None:
        if len(head) >= min(_META_LIMIT, size):
            return None
        more = _read_full(stream, len(head))
        if not more:
            return None
        head += more
    return head[start:], size - start


def same_data_set(new: Readable, new_size: int, stored: Readable, stored_size: int) -> bool:
    """Whether two Part 10 files of these sizes hold byte-identical data sets.

    The caller checks the transfer syntaxes: the same bytes in different transfer
    syntaxes are different objects. Different data set lengths are answered after the
    first few KiB of each file.
    """
    a, b = _data_set(new, new_size), _data_set(stored, stored_size)
    if a is None or b is None or a[1] != b[1]:
        return False
    (left, _), (right, _) = a, b
    while True:
        common = min(len(left), len(right))
        if left[:common] != right[:common]:
            return False
        left, right = left[common:], right[common:]
        if not left:
            left = _read_full(new, _CHUNK)
        if not right:
            right = _read_full(stored, _CHUNK)
        if not left or not right:
            return not left and not right
