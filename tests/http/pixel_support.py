"""Shared by the frames and bulk data tests: pydicom's own reading of the test files."""

from __future__ import annotations

from pathlib import Path

import httpx
from pydicom import dcmread
from pydicom.dataset import Dataset
from pydicom.encaps import get_frame
from pydicom.uid import generate_uid

from tests.support.data import real_file


def unique_copy(name: str, directory: Path) -> Path:
    """The pydicom file with a fresh SOP Instance UID (the rtdose files share theirs).

    Only the UID changes; the pixel data is written back as it was read.
    """
    ds = dcmread(real_file(name))
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{Path(name).stem}-{ds.SOPInstanceUID}.dcm"
    ds.save_as(path)
    return path


def frame_count(ds: Dataset) -> int:
    return int(ds.get("NumberOfFrames") or 1)


def stored_frame(ds: Dataset, index: int) -> bytes:
    """Frame ``index`` (0-based) as pydicom reads it: the bitstream, or native LE bytes."""
    if ds.file_meta.TransferSyntaxUID.is_encapsulated:
        return get_frame(ds.PixelData, index, number_of_frames=frame_count(ds))
    return decoded_frame(ds, index)


def decoded_frame(ds: Dataset, index: int) -> bytes:
    array = ds.pixel_array
    frame = array[index] if frame_count(ds) > 1 else array
    return frame.astype(frame.dtype.newbyteorder("<")).tobytes()


def instance_url(ds: Dataset) -> str:
    return (f"/dicomweb/studies/{ds.StudyInstanceUID}/series/{ds.SeriesInstanceUID}"
            f"/instances/{ds.SOPInstanceUID}")


def parts_of(response: httpx.Response) -> list[tuple[str, bytes]]:
    """``(Content-Type, body)`` of each part of a multipart/related answer."""
    assert response.status_code == 200, response.text
    content_type = response.headers["content-type"]
    assert content_type.startswith("multipart/related"), content_type
    boundary = content_type.split("boundary=", 1)[1].strip('"')
    pieces = response.content.split(f"--{boundary}".encode())
    assert pieces[0] == b"" and pieces[-1] == b"--\r\n"
    parts = []
    for piece in pieces[1:-1]:
        head, _, body = piece.partition(b"\r\n\r\n")
        headers = dict(line.split(": ", 1) for line in head.decode().strip().split("\r\n"))
        body = body[:-2]
        assert int(headers["Content-Length"]) == len(body)
        parts.append((headers["Content-Type"], body))
    return parts
