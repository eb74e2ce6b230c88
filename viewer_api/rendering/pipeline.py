"""Pixels → a JPEG or PNG: decode one frame, apply the grayscale or colour pipeline, fit, encode.

The steps are those of the DICOM grayscale and colour pipelines (PS3.4 N.2), each done by
pydicom's own function rather than by hand:

1. decode only the requested frame (``Decoder.as_array(ds, index=n)``) for every transfer
   syntax pydicom's plugins support (native, deflated, JPEG, JPEG-LS, JPEG 2000, RLE via the
   pylibjpeg plugins); YBR_FULL / YBR_FULL_422 / YBR_RCT / YBR_ICT arrive as RGB and
   planar configuration is undone by the decoder;
2. grayscale: Modality LUT (``apply_modality_lut``, PS3.3 C.11.1), then VOI LUT: the
   requested window, else the dataset's VOI LUT Sequence or window (``apply_voi`` /
   ``apply_windowing``, PS3.3 C.11.2), else a window over the 0.5–99.5 percentiles of
   the frame; MONOCHROME1 is inverted (PS3.3 C.7.6.3.1.2). For integer pixels of up to
   16 bits these functions build one 8-bit lookup table over the stored value range,
   which each pixel then indexes (:func:`grayscale`);
3. colour: PALETTE COLOR through ``apply_color_lut`` (PS3.3 C.7.6.3.1.5), any remaining
   YBR through ``convert_color_space``, samples scaled from Bits Stored to 8 bits;
4. crop and scale into the viewport keeping the aspect ratio (PS3.18 8.3.5.1.3), with Pillow;
5. encode as JPEG (``quality``) or PNG.

The module is pure (a dataset in, bytes out): no I/O, no cache, so it is unit-tested alone.
"""

from __future__ import annotations

import io
import logging
import zlib

import numpy as np
from PIL import Image
from pydicom.dataset import Dataset
from pydicom.pixels import (
    apply_color_lut,
    apply_modality_lut,
    apply_voi,
    apply_windowing,
    convert_color_space,
    get_decoder,
)

from storage.errors import InvalidQuery, NotFound, SopClassNotSupported
from viewer_api.rendering.params import MediaType, RenderParams, Viewport, VoiFunction, Window

log = logging.getLogger(__name__)

_PERCENTILES = (0.5, 99.5)
_YBR = {"YBR_FULL", "YBR_FULL_422"}


class NotRenderable(SopClassNotSupported):
    """The object has no pixel data we can render (an SR, a waveform, an unknown codec).

    A subclass of :class:`SopClassNotSupported`, so the one error table gives it HTTP 400.
    """

    code = "NotRenderable"


def frame_count(ds: Dataset) -> int:
    """Number of Frames (0028,0008), 1 when absent (PS3.3 C.7.6.6)."""
    try:
        return max(1, int(ds.get("NumberOfFrames") or 1))
    except (TypeError, ValueError):
        return 1


def decode_frame(ds: Dataset, frame: int) -> tuple[np.ndarray, str]:
    """Decode frame ``frame`` (from 1) of ``ds``: the array and its photometric interpretation.

    Raises
    ------
    NotRenderable
        No pixel data, or no installed decoder can decode it.
    NotFound
        The object has fewer frames (HTTP 404: the frame resource does not exist).
    """
    syntax = getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", None)
    if "PixelData" not in ds or syntax is None:
        raise NotRenderable("the object has no pixel data to render")
    count = frame_count(ds)
    if frame > count:
        raise NotFound(f"frame {frame} does not exist (the object has {count})")
    try:
        decoder = get_decoder(syntax)
        arr, meta = decoder.as_array(ds, index=frame - 1, as_rgb=True)
    except NotImplementedError as exc:  # no decoder (plugin) for this transfer syntax
        raise NotRenderable(f"no decoder for transfer syntax {syntax}") from exc
    except (ValueError, AttributeError, RuntimeError, KeyError) as exc:
        log.warning("pixel data could not be decoded (%s)", type(exc).__name__)
        raise NotRenderable("the pixel data could not be decoded") from exc
    return arr, str(meta.get("photometric_interpretation", ds.PhotometricInterpretation))


def _voi_dataset(win: Window) -> Dataset:
    """A VOI LUT module holding ``win``, whose output range is 0–255.

    ``apply_windowing`` maps the window onto the range of the stored values its dataset
    describes; describing unsigned 8-bit values without a rescale makes that range 0–255
    (PS3.3 C.11.2.1.2), which is the display range of the output image.
    """
    voi = Dataset()
    voi.PhotometricInterpretation = "MONOCHROME2"
    voi.BitsStored = 8
    voi.PixelRepresentation = 0
    voi.WindowCenter = win.center
    voi.WindowWidth = win.width
    voi.VOILUTFunction = win.function.value
    return voi


def _dataset_window(ds: Dataset) -> Window | None:
    """The dataset's first window (PS3.3 C.11.2.1.2), or ``None`` if absent or unusable."""
    if "WindowCenter" not in ds or "WindowWidth" not in ds:
        return None
    try:
        center = ds["WindowCenter"].value
        width = ds["WindowWidth"].value
        center = float(center[0] if ds["WindowCenter"].VM > 1 else center)
        width = float(width[0] if ds["WindowWidth"].VM > 1 else width)
        function = VoiFunction(str(ds.get("VOILUTFunction") or "LINEAR").upper())
    except (TypeError, ValueError, IndexError):
        return None
    if width < 1 or not np.isfinite([center, width]).all():
        return None
    return Window(center, width, function)


def _percentile_window(values: np.ndarray) -> Window:
    """A window over the 0.5–99.5 percentiles: robust to a few outliers (e.g. padding)."""
    lo, hi = (float(v) for v in np.percentile(values, _PERCENTILES))
    return _window_between(lo, hi)


def _window_between(lo: float, hi: float) -> Window:
    if hi <= lo:
        hi = lo + 1.0
    return Window((lo + hi) / 2, hi - lo, VoiFunction.LINEAR_EXACT)


def _histogram_window(counts: np.ndarray, values: np.ndarray) -> Window:
    """:func:`_percentile_window` of the data whose value ``values[i]`` occurs ``counts[i]``
    times: the same linear interpolation between order statistics as ``np.percentile``,
    read from the cumulative histogram instead of sorting every pixel."""
    order = np.argsort(values, kind="stable")
    ordered, cumulative = values[order], np.cumsum(counts[order])
    n = int(cumulative[-1])

    def order_statistic(k: int) -> float:  # the k-th smallest value (from 0)
        return float(ordered[np.searchsorted(cumulative, k, side="right")])

    bounds = []
    for p in _PERCENTILES:
        h = (n - 1) * p / 100.0
        k = int(np.floor(h))
        low = order_statistic(k)
        high = order_statistic(min(k + 1, n - 1))
        bounds.append(low + (high - low) * (h - k))
    return _window_between(*bounds)


def _display_values(stored: np.ndarray, ds: Dataset, win: Window | None) -> np.ndarray:
    """Stored values → 8-bit display values, element by element (PS3.4 N.2.1: Modality
    LUT, VOI LUT, polarity), with pydicom's LUT functions."""
    values = apply_modality_lut(stored, ds)
    if win is None and ds.get("VOILUTSequence"):
        item = ds.VOILUTSequence[0]
        bits = int(item.LUTDescriptor[2])
        out = apply_voi(np.rint(values).astype(np.int64), ds).astype(np.float64)
        out *= 255.0 / (2**bits - 1)
    else:
        win = win or _dataset_window(ds) or _percentile_window(values)
        with np.errstate(over="ignore"):  # SIGMOID far outside the window: exp → inf → 0
            out = apply_windowing(values.astype(np.float64), _voi_dataset(win))
    if ds.get("PhotometricInterpretation") == "MONOCHROME1":
        out = 255.0 - out  # minimum value is white (PS3.3 C.7.6.3.1.2)
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def _stored_values(dtype: np.dtype, bits: int) -> np.ndarray:
    """Every value ``bits`` stored bits can hold, in the order of those bits read as an
    unsigned number (two's complement when ``dtype`` is signed, PS3.5 8.1.1)."""
    values = np.arange(2**bits, dtype=np.int64)
    if dtype.kind == "i":
        values[values >= 1 << (bits - 1)] -= 1 << bits
    return values.astype(dtype)


def grayscale(arr: np.ndarray, ds: Dataset, win: Window | None) -> np.ndarray:
    """Stored values → 8-bit display values (PS3.4 N.2.1: Modality LUT, VOI LUT, polarity).

    Integer pixels of up to 16 bits (nearly every grey image) go through one lookup
    table: :func:`_display_values` is evaluated once for each value Bits Stored can
    hold (4,096 for 12 bits) and each pixel is then a single ``np.take``. The output is
    the same as evaluating it on every pixel (what wider or float pixels still do), at
    a fraction of the cost on a large radiograph: the float64 LUT arithmetic runs on the
    value range, not on millions of pixels.

    The table is indexed by each pixel's whole bit pattern and repeats for every value
    of the bits above Bits Stored, which are not part of the value (PS3.5 8.1.1): so
    ``arr`` may also be :func:`native_grey_frame`'s view of the file's bytes, whose high
    bits the decoder has not cleared.
    """
    if arr.dtype.kind not in "iu" or arr.dtype.itemsize > 2:
        return _display_values(arr, ds, win)
    if not arr.dtype.isnative:
        arr = arr.astype(arr.dtype.newbyteorder("="))
    width = 8 * arr.dtype.itemsize
    bits = min(max(int(ds.get("BitsStored") or width), 1), width)
    values = _stored_values(arr.dtype, bits)
    index = arr.view(f"u{arr.dtype.itemsize}")
    if win is None and not ds.get("VOILUTSequence") and _dataset_window(ds) is None:
        counts = np.bincount(index.ravel(), minlength=2**width)
        counts = counts.reshape(-1, values.size).sum(axis=0)  # by the low `bits` bits
        win = _histogram_window(counts, np.asarray(apply_modality_lut(values, ds),
                                                   dtype=np.float64))
    lut = _display_values(values, ds, win)
    if bits < width:
        lut = np.tile(lut, 2 ** (width - bits))  # pattern p -> lut[p & (2**bits - 1)]
    return np.take(lut, index)


def colour(arr: np.ndarray, photometric: str, ds: Dataset) -> np.ndarray:
    """Colour samples → 8-bit RGB (PS3.3 C.7.6.3.1.2 and C.7.6.3.1.5)."""
    if photometric == "PALETTE COLOR":
        rgb = apply_color_lut(arr, ds)
        bits = 8 if rgb.dtype == np.uint8 else 16
    else:
        rgb = arr
        if photometric in _YBR:
            rgb = convert_color_space(rgb, photometric, "RGB")
        bits = int(ds.get("BitsStored") or rgb.dtype.itemsize * 8)
    if rgb.ndim != 3 or rgb.shape[-1] != 3:
        raise NotRenderable(f"unsupported photometric interpretation {photometric}")
    if bits == 8 and rgb.dtype == np.uint8:
        return rgb
    scaled = rgb.astype(np.float64) * (255.0 / (2**bits - 1))
    return np.clip(np.rint(scaled), 0, 255).astype(np.uint8)


def native_grey_frame(ds: Dataset, frame: int) -> np.ndarray | None:
    """Frame ``frame`` of uncompressed little-endian grey pixel data as a view of the
    dataset's own bytes (no copy), or ``None`` when the decoder must do it.

    The view holds the bit patterns as stored, unused high bits included: only
    :func:`grayscale` may read it, which takes the value of each pattern from Bits
    Stored and Pixel Representation (PS3.5 8.1.1, PS3.3 C.7.6.3.1) in its lookup table.
    This skips the decoder's copy and its clearing pass over every pixel, a fifth of an
    uncached 2500 x 3000 preview.
    """
    syntax = getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", None)
    if (syntax is None or syntax.is_encapsulated or not syntax.is_little_endian
            or ds.get("PhotometricInterpretation") not in ("MONOCHROME1", "MONOCHROME2")
            or ds.get("SamplesPerPixel", 1) != 1
            or ds.get("BitsAllocated") not in (8, 16)
            or ds.get("PixelRepresentation") not in (0, 1)
            or not 1 <= int(ds.get("BitsStored") or 0) <= int(ds.BitsAllocated)):
        return None
    data = ds.get("PixelData")
    rows, cols = int(ds.get("Rows") or 0), int(ds.get("Columns") or 0)
    size = rows * cols * (int(ds.BitsAllocated) // 8)
    if not isinstance(data, bytes) or size == 0 or frame > frame_count(ds) \
            or len(data) < frame * size:
        return None
    kind = "i" if ds.PixelRepresentation == 1 else "u"
    dtype = np.dtype(f"<{kind}{int(ds.BitsAllocated) // 8}")
    return np.frombuffer(data, dtype, rows * cols, (frame - 1) * size).reshape(rows, cols)


def display_frame(ds: Dataset, params: RenderParams) -> np.ndarray:
    """The requested frame as 8-bit display values: ``(rows, cols)`` or ``(rows, cols, 3)``."""
    stored = native_grey_frame(ds, params.frame)
    if stored is not None:
        return grayscale(stored, ds, params.window)
    arr, photometric = decode_frame(ds, params.frame)
    if photometric in ("MONOCHROME1", "MONOCHROME2") and arr.ndim == 2:
        return grayscale(arr, ds, params.window)
    return colour(arr, photometric, ds)


def fit(image: Image.Image, viewport: Viewport | None) -> Image.Image:
    """Crop the source region, flip for negative sizes, scale into the viewport keeping
    the aspect ratio (PS3.18 8.3.5.1.3; WADO-URI rows/columns are maxima, PS3.18 9.1.2.2)."""
    if viewport is None:
        return image
    w, h = image.size
    sw = viewport.sw if viewport.sw is not None else w - viewport.sx
    sh = viewport.sh if viewport.sh is not None else h - viewport.sy
    x0, x1 = sorted((viewport.sx, viewport.sx + sw))
    y0, y1 = sorted((viewport.sy, viewport.sy + sh))
    x0, x1, y0, y1 = max(0, x0), min(w, x1), max(0, y0), min(h, y1)
    if x1 <= x0 or y1 <= y0:
        raise InvalidQuery("the viewport source region lies outside the image")
    if (x0, y0, x1, y1) != (0, 0, w, h):
        image = image.crop((x0, y0, x1, y1))
    if sw < 0:
        image = image.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    if sh < 0:
        image = image.transpose(Image.Transpose.FLIP_TOP_BOTTOM)
    w, h = image.size
    scales = [s for s in (viewport.width and viewport.width / w,
                          viewport.height and viewport.height / h) if s]
    scale = min(scales)
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    if size != (w, h):
        # reducing_gap: a box reduction by an integer factor first, then Lanczos over the
        # last factor of three or less; Pillow documents 3.0 as indistinguishable from
        # plain Lanczos. A 128-pixel thumbnail of a 2500 x 3000 CR: ~27 -> ~4 ms.
        image = image.resize(size, Image.Resampling.LANCZOS, reducing_gap=3.0)
    return image


def encode(image: Image.Image, media: MediaType, quality: int) -> bytes:
    """JPEG (baseline, ``quality``) or PNG bytes of ``image``.

    PNG is deflated with zlib's run-length strategy (``Z_RLE``, which zlib's manual
    describes as "designed to be almost as fast as Z_HUFFMAN_ONLY, but give better
    compression for PNG image data") after Pillow's per-row adaptive filter: on a
    2500 x 3000 radiograph it is about six times faster than the default level 6 and
    the file is no larger (the filtered rows of a medical image are mostly short runs).
    """
    out = io.BytesIO()
    if media is MediaType.PNG:
        image.save(out, format="PNG", compress_level=1, compress_type=zlib.Z_RLE)
    else:
        image.save(out, format="JPEG", quality=quality)
    return out.getvalue()


def render(ds: Dataset, params: RenderParams) -> bytes:
    """The whole pipeline: ``ds`` (pixel data still encoded) → JPEG or PNG bytes.

    Raises
    ------
    NotRenderable
        No pixel data, or pixel data that cannot be decoded (HTTP 400).
    NotFound
        ``params.frame`` is beyond Number of Frames (HTTP 404).
    InvalidQuery
        The viewport region lies outside the image (HTTP 400).
    """
    pixels = display_frame(ds, params)
    image = Image.fromarray(np.ascontiguousarray(pixels))  # uint8: "L" or "RGB"
    return encode(fit(image, params.viewport), params.media, params.quality)
