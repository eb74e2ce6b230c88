"""Frames of archived instances, read lazily from object storage (PS3.18 10.4, RetrieveFrames).

At ingest the element walk records where the pixel data value is
(:class:`storage.dicomio.PixelDataLocation`, kept in the index). A frame is then one or two
ranged reads of the stored object, never a parse of the whole object:

- native (uncompressed) pixel data: frame *n* is the byte range
  ``offset + (n - 1) * frame_size`` (PS3.5 8.1.1 / 8.2; big endian values are swapped to
  little endian, as PS3.18 8.7.3.3.2 requires for application/octet-stream);
- encapsulated pixel data (PS3.5 A.4): the Basic Offset Table is read first; when it is
  there a frame is the fragments between two of its offsets. Without one, a single frame
  is every fragment, and several frames are split by pydicom's
  :func:`pydicom.encaps.get_frame` (one fragment per frame, or JPEG end-of-image markers,
  or the Extended Offset Table) over the pixel data value alone.

Objects whose pixel data cannot be located that way (Deflated, or ingested before the
location was recorded) fall back to reading the object with pydicom.
"""

from __future__ import annotations

import json
import shutil
import struct
import tempfile
from dataclasses import dataclass, field
from typing import Any, BinaryIO, cast

import numpy as np
from pydicom import dcmread
from pydicom.encaps import encapsulate, generate_fragments, get_frame
from pydicom.pixels import get_decoder
from pydicom.uid import UID, ExplicitVRBigEndian

from storage.errors import NotFound, UnreadableDataset
from storage.objects import ObjectStore

_ITEM = 0xE000FFFE  # (FFFE,E000) read as one little-endian 32-bit word
_HEADER_KEYS = {
    "rows": "00280010", "columns": "00280011", "samples_per_pixel": "00280002",
    "bits_allocated": "00280100", "bits_stored": "00280101",
    "pixel_representation": "00280103", "photometric_interpretation": "00280004",
    "planar_configuration": "00280006", "number_of_frames": "00280008",
}


def as_seekable(fh: BinaryIO) -> BinaryIO:
    """``fh`` if it can seek, else a spooled copy of it (pydicom needs to seek).

    S3 bodies are forward-only streams; up to 64 MiB the copy stays in memory.
    """
    try:
        if fh.seekable():
            return fh
    except (AttributeError, ValueError):
        pass
    copy = tempfile.SpooledTemporaryFile(max_size=64 << 20)
    with fh:
        shutil.copyfileobj(fh, copy, 1 << 20)
    copy.seek(0)
    return cast(BinaryIO, copy)


def _value(header: dict[str, Any], tag: str, default: Any) -> Any:
    values = header.get(tag, {}).get("Value") or [default]
    return values[0] if values[0] is not None else default


@dataclass(frozen=True)
class PixelRef:
    """One archived instance's pixel data: where it is stored and how it is encoded.

    The pixel description comes from the stored JSON header (PS3.3 C.7.6.3 Image Pixel
    Module), so it costs no object read.
    """

    object_key: str
    transfer_syntax_uid: str
    offset: int | None
    length: int | None
    rows: int
    columns: int
    samples_per_pixel: int
    bits_allocated: int
    bits_stored: int
    pixel_representation: int
    photometric_interpretation: str
    planar_configuration: int
    number_of_frames: int
    has_pixel_data: bool
    extended_offsets: bool = False
    header: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_row(cls, object_key: str, transfer_syntax_uid: str, offset: int | None,
                 length: int | None, metadata_json: str) -> PixelRef:
        header: dict[str, Any] = json.loads(metadata_json)
        get = {name: _value(header, tag, None) for name, tag in _HEADER_KEYS.items()}
        return cls(
            object_key=object_key, transfer_syntax_uid=transfer_syntax_uid,
            offset=offset, length=length,
            rows=int(get["rows"] or 0), columns=int(get["columns"] or 0),
            samples_per_pixel=int(get["samples_per_pixel"] or 1),
            bits_allocated=int(get["bits_allocated"] or 8),
            bits_stored=int(get["bits_stored"] or get["bits_allocated"] or 8),
            pixel_representation=int(get["pixel_representation"] or 0),
            photometric_interpretation=str(get["photometric_interpretation"] or "MONOCHROME2"),
            planar_configuration=int(get["planar_configuration"] or 0),
            number_of_frames=max(1, int(get["number_of_frames"] or 1)),
            # Rows without a location were indexed before locations were recorded:
            # their pixel data is looked for in the object.
            has_pixel_data=any(t in header for t in ("7FE00010", "7FE00008", "7FE00009"))
            or (offset is None and bool(get["rows"]) and bool(get["columns"])),
            extended_offsets="7FE00001" in header,
            header=header,
        )

    @property
    def encapsulated(self) -> bool:
        return UID(self.transfer_syntax_uid).is_encapsulated

    @property
    def frame_bits(self) -> int:
        """Bits per native frame (PS3.5 8.1.1; YBR_FULL_422 holds two samples a pixel)."""
        samples = 2 if self.photometric_interpretation == "YBR_FULL_422" else \
            self.samples_per_pixel
        return self.rows * self.columns * samples * self.bits_allocated


def check_frame_numbers(ref: PixelRef, numbers: list[int]) -> None:
    """Raise :class:`NotFound` (404) unless every number is a frame of the instance.

    PS3.18 10.4.1.1.3: frame numbers start at 1; an instance without pixel data has none.
    """
    if not ref.has_pixel_data:
        raise NotFound("the instance has no pixel data")
    wrong = [n for n in numbers if not 1 <= n <= ref.number_of_frames]
    if wrong:
        raise NotFound(f"frame {wrong[0]} does not exist; the instance has "
                       f"{ref.number_of_frames} frame(s)")


class FrameReader:
    """Frames of one instance as stored (compressed bitstream, or little-endian native bytes).

    One reader serves one request: the Basic Offset Table, or the whole pixel data value
    when it must be scanned, is read once and kept for the next frames.
    """

    def __init__(self, objects: ObjectStore, ref: PixelRef) -> None:
        self.objects = objects
        self.ref = ref
        self._offsets: list[int] | None = None
        self._first_fragment = 0
        self._value: bytes | None = None

    def frame(self, number: int) -> bytes:
        """Frame ``number`` (1-based) in its stored encoding; little endian when native."""
        check_frame_numbers(self.ref, [number])
        ref = self.ref
        if ref.offset is None or ref.length is None or ref.extended_offsets:
            return self._from_dataset(number)
        if not ref.encapsulated:
            return self._native(number)
        return self._encapsulated(number)

    def native_value(self) -> bytes:
        """The whole native pixel data value, little endian (the Pixel Data bulk data).

        Raises
        ------
        NotFound
            No pixel data.
        """
        ref = self.ref
        if not ref.has_pixel_data:
            raise NotFound("the instance has no pixel data")
        if ref.offset is None or ref.length is None:
            with as_seekable(self.objects.open(ref.object_key)) as fh:
                ds = dcmread(fh, force=True)
            if "PixelData" not in ds:
                raise NotFound("the instance has no pixel data")
            return self._little_endian(bytes(ds.PixelData))
        data = self.objects.read_range(ref.object_key, ref.offset, ref.offset + ref.length)
        return self._little_endian(data)

    # -- native -------------------------------------------------------------------------
    def _native(self, number: int) -> bytes:
        ref = self.ref
        assert ref.offset is not None
        bits = ref.frame_bits
        start_bit = (number - 1) * bits
        start, end = start_bit // 8, -(-(start_bit + bits) // 8)
        data = self.objects.read_range(ref.object_key, ref.offset + start, ref.offset + end)
        if len(data) < end - start:
            raise UnreadableDataset("the stored pixel data is shorter than its frames")
        return self._little_endian(_realign_bits(data, start_bit % 8, bits))

    def _little_endian(self, data: bytes) -> bytes:
        width = self.ref.bits_allocated // 8
        if self.ref.transfer_syntax_uid != ExplicitVRBigEndian or width < 2:
            return data
        return np.frombuffer(data, dtype=f">u{width}").astype(f"<u{width}").tobytes()

    # -- encapsulated ---------------------------------------------------------------------
    def _encapsulated(self, number: int) -> bytes:
        ref = self.ref
        assert ref.offset is not None and ref.length is not None
        end_of_fragments = ref.offset + ref.length - 8  # before the Sequence Delimiter
        if self._offsets is None:
            head = self.objects.read_range(ref.object_key, ref.offset, ref.offset + 8)
            if len(head) < 8 or struct.unpack("<I", head[:4])[0] != _ITEM:
                raise UnreadableDataset("encapsulated pixel data lacks its offset table item")
            table_length = struct.unpack("<I", head[4:])[0]
            table = self.objects.read_range(ref.object_key, ref.offset + 8,
                                            ref.offset + 8 + table_length)
            self._offsets = list(struct.unpack(f"<{table_length // 4}I", table))
            self._first_fragment = ref.offset + 8 + table_length
        offsets = self._offsets
        if len(offsets) == ref.number_of_frames and offsets:
            start = self._first_fragment + offsets[number - 1]
            end = self._first_fragment + offsets[number] if number < len(offsets) \
                else end_of_fragments
            return _join_items(self.objects.read_range(ref.object_key, start, end))
        if ref.number_of_frames == 1:
            return _join_items(self.objects.read_range(ref.object_key, self._first_fragment,
                                                       end_of_fragments))
        if self._value is None:
            self._value = self.objects.read_range(ref.object_key, ref.offset,
                                                  ref.offset + ref.length)
        try:
            return get_frame(self._value, number - 1, number_of_frames=ref.number_of_frames)
        except (ValueError, KeyError) as exc:
            raise UnreadableDataset(f"frame {number} cannot be found in the fragments") from exc

    # -- fallback -------------------------------------------------------------------------
    def _from_dataset(self, number: int) -> bytes:
        """Read the object with pydicom (Deflated, Extended Offset Table, old rows)."""
        with as_seekable(self.objects.open(self.ref.object_key)) as fh:
            ds = dcmread(fh, force=True)
        ref = self.ref
        if "PixelData" not in ds:
            raise NotFound("the instance has no pixel data")
        if ref.encapsulated:
            extended = None
            if "ExtendedOffsetTable" in ds and "ExtendedOffsetTableLengths" in ds:
                extended = (ds.ExtendedOffsetTable, ds.ExtendedOffsetTableLengths)
            return get_frame(ds.PixelData, number - 1, number_of_frames=ref.number_of_frames,
                             extended_offsets=extended)
        bits = ref.frame_bits
        start_bit = (number - 1) * bits
        data = ds.PixelData[start_bit // 8: -(-(start_bit + bits) // 8)]
        return self._little_endian(_realign_bits(data, start_bit % 8, bits))


def _join_items(data: bytes) -> bytes:
    """The values of consecutive fragment items (PS3.5 A.4), joined."""
    return b"".join(generate_fragments(data))


def _realign_bits(data: bytes, shift: int, bits: int) -> bytes:
    """Bit-packed frames (BitsAllocated 1, PS3.5 8.1.1) need not start on a byte edge."""
    if shift == 0 and bits % 8 == 0:
        return data
    unpacked = np.unpackbits(np.frombuffer(data, dtype=np.uint8), bitorder="little")
    return np.packbits(unpacked[shift:shift + bits], bitorder="little").tobytes()


def can_decode(transfer_syntax_uid: str) -> bool:
    """Whether pydicom (with the pylibjpeg plugins) can decode frames of this syntax."""
    uid = UID(transfer_syntax_uid)
    if not uid.is_compressed:
        return True
    try:
        return bool(get_decoder(uid).is_available)
    except NotImplementedError:
        return False


def decode_frame(ref: PixelRef, data: bytes) -> bytes:
    """One compressed frame as native little-endian bytes (Explicit VR Little Endian).

    Colour frames come out as pydicom decodes them (RGB for YBR JPEG, interleaved
    samples), as ``Dataset.decompress`` does for whole instances.
    """
    if not ref.encapsulated:
        return data
    try:
        array, _ = get_decoder(UID(ref.transfer_syntax_uid)).as_array(
            encapsulate([data]), rows=ref.rows, columns=ref.columns,
            samples_per_pixel=ref.samples_per_pixel, bits_allocated=ref.bits_allocated,
            bits_stored=ref.bits_stored, pixel_representation=ref.pixel_representation,
            photometric_interpretation=ref.photometric_interpretation,
            planar_configuration=ref.planar_configuration, number_of_frames=1)
    except Exception as exc:  # decoder plugins raise many types for corrupt streams
        raise UnreadableDataset(f"the frame cannot be decoded: {type(exc).__name__}") from exc
    return bytes(array.astype(array.dtype.newbyteorder("<"), copy=False).tobytes())
