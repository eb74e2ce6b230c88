"""Transcoding archived objects to an uncompressed transfer syntax, one at a time.

Objects are archived as received (STYLE.md anti-pattern 6); when a DICOMweb client asks
for a transfer syntax other than the stored one (PS3.18 8.7.3.5.2, the ``transfer-syntax``
media type parameter), the object is decoded here with pydicom and its pixel data
decoder plugins (pylibjpeg, -libjpeg, -openjpeg, -rle). Only the little endian
uncompressed syntaxes are produced: every decoder pydicom has can reach them, and every
client can read them. Compressing is not offered.
"""

from __future__ import annotations

from io import BytesIO
from typing import BinaryIO

import numpy as np
from pydicom import dcmread
from pydicom.dataset import Dataset
from pydicom.uid import (
    UID,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
)

from storage.errors import UnreadableDataset
from storage.frames import as_seekable, can_decode

TARGETS = frozenset({ExplicitVRLittleEndian, ImplicitVRLittleEndian})
"""The transfer syntaxes any stored object can be transcoded to."""

_WORD_VRS = {"OW": 2, "OF": 4, "OL": 4, "OD": 8, "OV": 8}


def can_transcode(stored: str, wanted: str) -> bool:
    """Whether an object stored in ``stored`` can be sent in ``wanted``."""
    if stored == wanted:
        return True
    return wanted in TARGETS and can_decode(stored)


def transcode(fh: BinaryIO, wanted: str) -> bytes:
    """The Part 10 bytes of the object read from ``fh``, re-encoded in ``wanted``.

    The whole object is in memory while it is converted (one instance, never a study).
    Decompression is pydicom's ``Dataset.decompress`` (PS3.5 8.2: the result is native
    pixel data; YBR JPEG becomes RGB, as pydicom decodes it). Big endian pixel data and
    other word-valued elements at the top level are byte-swapped (PS3.5 7.3).

    Raises
    ------
    UnreadableDataset
        The object or its pixel data cannot be decoded.
    """
    try:
        with as_seekable(fh) as seekable:
            ds = dcmread(seekable, force=True)
        stored = UID(str(ds.file_meta.get("TransferSyntaxUID", ImplicitVRLittleEndian)))
        if stored.is_compressed and "PixelData" in ds:
            ds.decompress(generate_instance_uid=False)
        elif stored == ExplicitVRBigEndian:
            _swap_words(ds)
        ds.file_meta.TransferSyntaxUID = wanted
        out = BytesIO()
        ds.save_as(out, implicit_vr=wanted == ImplicitVRLittleEndian, little_endian=True,
                   enforce_file_format=True)
    except UnreadableDataset:
        raise
    except Exception as exc:  # pydicom and its plugins raise many types for bad data
        raise UnreadableDataset(f"the object cannot be transcoded: {type(exc).__name__}") \
            from exc
    return out.getvalue()


def _swap_words(ds: Dataset) -> None:
    """Values stored as raw bytes in big endian order, turned little endian."""
    bits = int(ds.get("BitsAllocated") or 8)
    for elem in ds:
        width = _WORD_VRS.get(elem.VR)
        if elem.tag == 0x7FE00010:
            width = bits // 8 if bits > 8 else None
        if width and isinstance(elem.value, bytes | bytearray) and len(elem.value) % width == 0:
            elem.value = np.frombuffer(elem.value, dtype=f">u{width}").astype(
                f"<u{width}").tobytes()
