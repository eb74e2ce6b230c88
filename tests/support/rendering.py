"""Reference renderings for the render tests, computed from pydicom's own decoding and LUTs.

The reference deliberately takes a different road from ``viewer_api.rendering.pipeline``:
it decodes the whole object with ``Dataset.pixel_array`` (not one frame through a
decoder), applies ``apply_voi_lut`` with the dataset's own VOI module and rescales from
the output range PS3.3 C.11.2.1.2 defines for the dataset's bit depth (the pipeline maps
windows straight onto 0–255), and scales colour by Bits Stored. Agreement within a grey
level or two shows the pipeline is right, not merely self-consistent.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from PIL import Image
from pydicom import dcmread
from pydicom.dataset import Dataset
from pydicom.pixels import (
    apply_color_lut,
    apply_modality_lut,
    apply_voi_lut,
    convert_color_space,
)
from pydicom.uid import ExplicitVRLittleEndian

from tests.support.data import real_dataset


def _frame(ds: Dataset, frame: int) -> np.ndarray:
    arr = ds.pixel_array
    frames = int(ds.get("NumberOfFrames") or 1)
    samples = int(ds.get("SamplesPerPixel") or 1)
    if frames > 1 or (arr.ndim == 3 and samples == 1):
        arr = arr[frame - 1]
    return arr


def _output_range(ds: Dataset) -> tuple[float, float]:
    """The range ``apply_windowing`` maps onto: stored range through the rescale (C.11.2.1.2)."""
    bits = int(ds.BitsStored)
    if ds.get("ModalityLUTSequence"):
        return 0.0, float(2 ** int(ds.ModalityLUTSequence[0].LUTDescriptor[2]) - 1)
    lo, hi = (0.0, 2.0**bits - 1) if ds.PixelRepresentation == 0 else (
        -(2.0 ** (bits - 1)), 2.0 ** (bits - 1) - 1)
    if "RescaleSlope" in ds and "RescaleIntercept" in ds:
        slope, intercept = float(ds.RescaleSlope), float(ds.RescaleIntercept)
        lo, hi = lo * slope + intercept, hi * slope + intercept
    return lo, hi


def reference(ds: Dataset, frame: int = 1, window: tuple[float, float, str] | None = None,
              ) -> np.ndarray:
    """The expected 8-bit display frame: ``(rows, cols)`` grey or ``(rows, cols, 3)`` RGB."""
    arr = _frame(ds, frame)
    pi = ds.PhotometricInterpretation
    if pi in ("MONOCHROME1", "MONOCHROME2"):
        values = apply_modality_lut(arr, ds).astype(np.float64)
        voi = Dataset()
        for keyword in ("BitsStored", "PixelRepresentation", "RescaleSlope",
                        "RescaleIntercept", "ModalityLUTSequence", "WindowCenter",
                        "WindowWidth", "VOILUTFunction"):
            if keyword in ds:
                setattr(voi, keyword, ds[keyword].value)
        voi.PhotometricInterpretation = "MONOCHROME2"
        if window is not None:
            voi.WindowCenter, voi.WindowWidth = window[0], window[1]
            voi.VOILUTFunction = window[2]
        if "WindowCenter" in voi:
            lo, hi = _output_range(voi)
            out = (apply_voi_lut(values, voi) - lo) / (hi - lo) * 255.0
        else:  # no VOI in the object: the robust min/max the pipeline promises
            lo, hi = np.percentile(values, (0.5, 99.5))
            out = np.clip((values - lo) / max(hi - lo, 1.0), 0, 1) * 255.0
        if pi == "MONOCHROME1":
            out = 255.0 - out
        return np.clip(np.rint(out), 0, 255).astype(np.uint8)
    if pi == "PALETTE COLOR":
        rgb = apply_color_lut(arr, ds)
        bits = 8 if rgb.dtype == np.uint8 else 16
    else:
        rgb, bits = arr, int(ds.BitsStored)  # pixel_array converts YBR to RGB itself
    return np.clip(np.rint(rgb * (255.0 / (2**bits - 1))), 0, 255).astype(np.uint8)


def decode_png(content: bytes) -> np.ndarray:
    """The pixels of a PNG (or JPEG) answer as a numpy array."""
    return np.asarray(Image.open(io.BytesIO(content)))


def assert_close(actual: np.ndarray, expected: np.ndarray, tolerance: int = 1) -> None:
    """Same shape, and no pixel differs by more than ``tolerance`` grey levels."""
    assert actual.shape == expected.shape, (actual.shape, expected.shape)
    diff = np.abs(actual.astype(np.int32) - expected.astype(np.int32))
    assert int(diff.max()) <= tolerance, f"max difference {int(diff.max())}"


def monochrome1(directory: Path) -> Path:
    """MR_small.dcm relabelled MONOCHROME1 (pydicom ships no MONOCHROME1 image)."""
    ds = real_dataset("MR_small.dcm")
    ds.PhotometricInterpretation = "MONOCHROME1"
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = "1.2.826.0.1.3680043.8.498.1"
    path = directory / "mono1.dcm"
    directory.mkdir(parents=True, exist_ok=True)
    ds.save_as(path, enforce_file_format=True)
    return path


def ybr_full(directory: Path) -> Path:
    """SC_rgb_rle.dcm's pixels as uncompressed YBR_FULL (PS3.3 C.7.6.3.1.2), which pydicom
    ships only JPEG-compressed."""
    ds = real_dataset("SC_rgb_rle.dcm")
    ybr = convert_color_space(ds.pixel_array, "RGB", "YBR_FULL")
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.PhotometricInterpretation = "YBR_FULL"
    ds.PlanarConfiguration = 0
    ds.PixelData = ybr.astype(np.uint8).tobytes()
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = "1.2.826.0.1.3680043.8.498.2"
    path = directory / "ybr_full.dcm"
    directory.mkdir(parents=True, exist_ok=True)
    ds.save_as(path, enforce_file_format=True)
    return path


def read(path: Path) -> Dataset:
    return dcmread(path)
