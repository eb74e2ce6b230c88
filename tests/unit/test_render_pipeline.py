"""The render pipeline against references computed from pydicom's own decoding and LUTs.

Every case renders to PNG (lossless) and compares pixel by pixel with
:func:`tests.support.rendering.reference`, within one grey level of rounding.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from pydicom import dcmread
from pydicom.dataset import Dataset
from pydicom.uid import generate_uid

from storage.errors import InvalidQuery, NotFound
from tests.support.data import StudySpec, make_instance, real_dataset, real_file
from tests.support.rendering import (
    assert_close,
    decode_png,
    monochrome1,
    reference,
    ybr_full,
)
from viewer_api.rendering import MediaType, NotRenderable, RenderParams, Viewport, pipeline, render
from viewer_api.rendering.params import (
    THUMBNAIL,
    VoiFunction,
    Window,
    parse_viewport,
    parse_window,
    rs_params,
)

PNG = MediaType.PNG

# file -> (what it covers, frame to render)
CASES = {
    "MR_small.dcm": ("MONOCHROME2, dataset window, explicit VR LE", 1),
    "CT_small.dcm": ("rescale slope/intercept, no window: percentile VOI", 1),
    "MR_small_bigendian.dcm": ("explicit VR big endian", 1),
    "image_dfl.dcm": ("deflated explicit VR LE", 1),
    "JPGExtended.dcm": ("JPEG extended 12-bit", 1),
    "SC_rgb_jpeg_gdcm.dcm": ("JPEG lossless SV1, RGB", 1),
    "SC_rgb_jpeg_dcmtk.dcm": ("JPEG baseline, YBR_FULL", 1),
    "SC_rgb_dcmtk_+eb+cy+np.dcm": ("JPEG baseline, YBR_FULL_422", 1),
    "SC_ybr_full_422_uncompressed.dcm": ("uncompressed YBR_FULL_422", 1),
    "MR_small_jpeg_ls_lossless.dcm": ("JPEG-LS lossless", 1),
    "MR_small_jp2klossless.dcm": ("JPEG 2000 lossless, grey", 1),
    "693_J2KI.dcm": ("JPEG 2000 lossy, signed, rescaled, windowed", 1),
    "examples_jpeg2k.dcm": ("JPEG 2000, YBR_RCT colour", 1),
    "MR_small_RLE.dcm": ("RLE lossless, grey", 1),
    "SC_rgb_rle.dcm": ("RLE lossless, RGB", 1),
    "SC_rgb_rle_16bit_2frame.dcm": ("RLE, 16-bit RGB, frame 2", 2),
    "ExplVR_BigEnd.dcm": ("RGB, planar configuration 1, big endian", 1),
    "examples_palette.dcm": ("PALETTE COLOR", 1),
    "examples_ybr_color.dcm": ("JPEG baseline multi-frame YBR_FULL_422, frame 7", 7),
    "rtdose_rle.dcm": ("RLE multi-frame 32-bit grey, frame 5", 5),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_png_matches_the_pydicom_reference(name: str) -> None:
    ds = real_dataset(name)
    frame = CASES[name][1]
    png = render(ds, RenderParams(media=PNG, frame=frame))
    assert png.startswith(b"\x89PNG\r\n\x1a\n")
    assert_close(decode_png(png), reference(dcmread(real_file(name)), frame))


@pytest.mark.parametrize("name", ["examples_ybr_color.dcm", "rtdose_rle.dcm",
                                  "SC_rgb_rle_2frame.dcm"])
def test_frame_n_is_that_frame_not_the_first(name: str) -> None:
    ds = real_dataset(name)
    last = int(ds.NumberOfFrames)
    first = decode_png(render(ds, RenderParams(media=PNG, frame=1)))
    nth = decode_png(render(ds, RenderParams(media=PNG, frame=last)))
    assert not np.array_equal(first, nth)
    assert_close(nth, reference(dcmread(real_file(name)), last))
    with pytest.raises(NotFound):
        render(ds, RenderParams(media=PNG, frame=last + 1))


def test_monochrome1_is_inverted(tmp_path: Path) -> None:
    mono1 = dcmread(monochrome1(tmp_path))
    mono2 = real_dataset("MR_small.dcm")
    inverted = decode_png(render(mono1, RenderParams(media=PNG)))
    normal = decode_png(render(mono2, RenderParams(media=PNG)))
    assert_close(inverted, 255 - normal, tolerance=0)
    assert_close(inverted, reference(mono1))


def test_uncompressed_ybr_full_is_converted_to_rgb(tmp_path: Path) -> None:
    ds = dcmread(ybr_full(tmp_path))
    out = decode_png(render(ds, RenderParams(media=PNG)))
    assert_close(out, reference(ds))
    # ... and it is the original RGB picture again, within the YCbCr round trip's error
    assert_close(out, real_dataset("SC_rgb_rle.dcm").pixel_array, tolerance=2)


@pytest.mark.parametrize("function", ["LINEAR", "LINEAR_EXACT", "SIGMOID"])
def test_requested_window_is_applied_and_changes_the_output(function: str) -> None:
    ds = real_dataset("CT_small.dcm")
    narrow = (40.0, 80.0, function)
    wide = (300.0, 1500.0, function)
    out = {}
    for win in (narrow, wide):
        params = RenderParams(media=PNG, window=Window(win[0], win[1], VoiFunction(function)))
        out[win] = decode_png(render(ds, params))
        assert_close(out[win], reference(dcmread(real_file("CT_small.dcm")), window=win))
    assert not np.array_equal(out[narrow], out[wide])


def test_viewport_keeps_the_aspect_ratio() -> None:
    ds = real_dataset("examples_palette.dcm")  # 800 x 350
    for viewport, size in (((200, 200), (200, 88)), ((1000, 100), (229, 100)),
                           ((None, 70), (160, 70)), ((400, None), (400, 175))):
        png = render(ds, RenderParams(media=PNG, viewport=Viewport(*viewport)))
        image = decode_png(png)
        assert (image.shape[1], image.shape[0]) == size, viewport
    thumb = decode_png(render(ds, RenderParams(media=PNG, viewport=THUMBNAIL)))
    assert max(thumb.shape[:2]) == 128


def test_viewport_region_crops_and_negative_sizes_flip() -> None:
    ds = real_dataset("CT_small.dcm")  # 128 x 128
    full = decode_png(render(ds, RenderParams(media=PNG)))
    crop = decode_png(render(ds, RenderParams(media=PNG, viewport=parse_viewport(
        "32,16,10,20,32,16"))))
    assert_close(crop, full[20:36, 10:42], tolerance=0)
    flipped = decode_png(render(ds, RenderParams(media=PNG, viewport=parse_viewport(
        "128,128,128,0,-128,128"))))
    assert_close(flipped, full[:, ::-1], tolerance=0)
    with pytest.raises(InvalidQuery):
        render(ds, RenderParams(media=PNG, viewport=parse_viewport("10,10,500,500,10,10")))


def test_jpeg_is_the_default_and_quality_is_used() -> None:
    ds = real_dataset("examples_rgb_color.dcm")
    low = render(ds, RenderParams(quality=10))
    high = render(ds, RenderParams(quality=95))
    assert low.startswith(b"\xff\xd8") and high.startswith(b"\xff\xd8")
    assert len(low) < len(high)
    # lossy, but the same picture: small mean error
    diff = np.abs(decode_png(high).astype(np.int32) - reference(ds).astype(np.int32))
    assert diff.mean() < 3, diff.mean()


def test_objects_without_pixels_are_not_renderable() -> None:
    for name in ("test-SR.dcm", "rtplan.dcm"):
        with pytest.raises(NotRenderable) as exc:
            render(real_dataset(name), RenderParams())
        assert exc.value.code == "NotRenderable"


@pytest.mark.parametrize("text", ["40", "a,b", "40,0", "40,80,cubic", "40,0.5,linear",
                                  "1,2,3,4", "nan,5"])
def test_bad_window_parameters_are_refused(text: str) -> None:
    with pytest.raises(InvalidQuery):
        parse_window(text)


@pytest.mark.parametrize("text", ["", "0,10", "10", "x,y", "10,10,1,2,3", ",", "10,10,0,0,0,5"])
def test_bad_viewports_are_refused(text: str) -> None:
    with pytest.raises(InvalidQuery):
        parse_viewport(text)


def test_request_parameters_are_normalised() -> None:
    params = rs_params({"window": "40,400,linear-exact", "viewport": "64,64",
                        "quality": "70", "annotation": "patient"}, PNG, frame=3)
    assert params == RenderParams(media=PNG, frame=3,
                                  window=Window(40.0, 400.0, VoiFunction.LINEAR_EXACT),
                                  viewport=Viewport(64, 64), quality=70)
    # PNG ignores quality, so it is not part of the cache key
    assert params.key() == rs_params({"window": "40,400,linear-exact", "viewport": "64,64"},
                                     PNG, frame=3).key()
    thumb = rs_params({}, MediaType.JPEG, thumbnail=True)
    assert thumb.viewport == THUMBNAIL and thumb.quality < 90


# -- the lookup-table path (integer pixels up to 16 bits) ---------------------------------
def _grey(bits_allocated: int, bits_stored: int, signed: bool, *, slope: float | None = None,
          intercept: float = 0.0, window: tuple[float, float, str] | None = None,
          photometric: str = "MONOCHROME2", seed: int = 1) -> Dataset:
    """A 64 x 80 grey image: a ramp over the whole stored range, noise, a few outliers."""
    ds = make_instance(StudySpec(), generate_uid(), 1, 1)
    lo, hi = ((-(2 ** (bits_stored - 1)), 2 ** (bits_stored - 1) - 1) if signed
              else (0, 2**bits_stored - 1))
    rng = np.random.default_rng(seed)
    ramp = np.linspace(lo, hi, 64 * 80).reshape(64, 80)
    pixels = np.clip(ramp + rng.normal(0, (hi - lo) / 50, ramp.shape), lo, hi)
    pixels[0, :5] = lo, hi, lo, hi, (lo + hi) // 2
    dtype = np.dtype(f"{'i' if signed else 'u'}{bits_allocated // 8}")
    ds.Rows, ds.Columns = 64, 80
    ds.BitsAllocated, ds.BitsStored, ds.HighBit = bits_allocated, bits_stored, bits_stored - 1
    ds.PixelRepresentation = int(signed)
    ds.PhotometricInterpretation = photometric
    ds.PixelData = np.rint(pixels).astype(dtype).tobytes()
    if slope is not None:
        ds.RescaleSlope, ds.RescaleIntercept = slope, intercept
    if window is not None:
        ds.WindowCenter, ds.WindowWidth, ds.VOILUTFunction = window
    return ds


LUT_CASES = {
    "unsigned 12-bit, CT rescale, percentile window": dict(
        bits_allocated=16, bits_stored=12, signed=False, slope=1.0, intercept=-1024.0),
    "signed 16-bit, fractional rescale, dataset window": dict(
        bits_allocated=16, bits_stored=16, signed=True, slope=0.5, intercept=100.0,
        window=(300.0, 9000.0, "LINEAR")),
    "signed 12-bit, MONOCHROME1, percentile window": dict(
        bits_allocated=16, bits_stored=12, signed=True, photometric="MONOCHROME1"),
    "unsigned 14-bit radiograph, dataset window (as the bench CR)": dict(
        bits_allocated=16, bits_stored=14, signed=False, window=(2000.0, 3500.0, "LINEAR")),
    "unsigned 12-bit, negative slope, percentile window": dict(
        bits_allocated=16, bits_stored=12, signed=False, slope=-2.0, intercept=50.0),
    "unsigned 8-bit, sigmoid window": dict(
        bits_allocated=8, bits_stored=8, signed=False, window=(128.0, 60.0, "SIGMOID")),
    "signed 8-bit, rescale, linear-exact window": dict(
        bits_allocated=8, bits_stored=8, signed=True, slope=3.0, intercept=-7.0,
        window=(0.0, 300.0, "LINEAR_EXACT")),
}


@pytest.mark.parametrize("case", sorted(LUT_CASES))
def test_lookup_table_path_equals_the_per_pixel_path(case: str) -> None:
    ds = _grey(**LUT_CASES[case])  # type: ignore[arg-type]
    stored = ds.pixel_array
    assert stored.dtype.kind in "iu" and stored.dtype.itemsize <= 2  # the LUT path applies
    out = decode_png(render(ds, RenderParams(media=PNG)))
    # the same functions evaluated on every pixel (np.percentile on all modality values)
    assert_close(out, pipeline._display_values(stored, ds, None), tolerance=0)
    assert_close(out, reference(ds))
    requested = Window(-20.0, 700.0, VoiFunction.LINEAR)
    out = decode_png(render(ds, RenderParams(media=PNG, window=requested)))
    assert_close(out, pipeline._display_values(stored, ds, requested), tolerance=0)


def test_lookup_table_path_applies_a_voi_lut_sequence() -> None:
    ds = _grey(16, 12, False)
    item = Dataset()
    item.LUTDescriptor = [4096, 0, 10]
    item.LUTData = [int(v) for v in (np.sqrt(np.arange(4096) / 4095) * 1023)]
    ds.VOILUTSequence = [item]
    out = decode_png(render(ds, RenderParams(media=PNG)))
    expected = pipeline._display_values(ds.pixel_array, ds, None)
    assert_close(out, expected, tolerance=0)
    assert int(expected[0, 1]) == 255 and int(expected[0, 0]) == 0  # the LUT's whole range


@pytest.mark.parametrize("size", [1, 2, 7, 200, 1001])
def test_histogram_window_is_numpys_percentile_window(size: int) -> None:
    # few pixels, far-apart values: the interpolation between order statistics shows
    rng = np.random.default_rng(size)
    stored = rng.integers(0, 40, size).astype(np.uint16)
    values = stored * -37.5 + 3.0  # a negative slope reverses the order
    domain = np.arange(40, dtype=np.uint16) * -37.5 + 3.0
    counts = np.bincount(stored, minlength=40)
    got = pipeline._histogram_window(counts, domain)
    want = pipeline._percentile_window(values)
    assert got.function == want.function
    assert got.center == pytest.approx(want.center, abs=1e-9)
    assert got.width == pytest.approx(want.width, abs=1e-9)


@pytest.mark.parametrize("signed", [False, True])
def test_bits_above_bits_stored_are_ignored(signed: bool) -> None:
    # PS3.5 8.1.1: the high bits of a 12-bit value in 16 bits are not part of it (old
    # modalities put overlays there); the decoder clears them, the native path's LUT must
    # read each pattern the same way.
    clean = _grey(16, 12, signed, slope=1.0, intercept=-1024.0)
    dirty = _grey(16, 12, signed, slope=1.0, intercept=-1024.0)
    noise = np.random.default_rng(7).integers(0, 16, (64, 80)).astype(np.uint16) << 12
    patterns = np.frombuffer(clean.PixelData, np.uint16) & 0x0FFF
    dirty.PixelData = (patterns.reshape(64, 80) | noise).tobytes()
    assert pipeline.native_grey_frame(dirty, 1) is not None  # the no-copy path is taken
    out = decode_png(render(dirty, RenderParams(media=PNG)))
    assert_close(out, decode_png(render(clean, RenderParams(media=PNG))), tolerance=0)
    # ... and it is what pydicom's decoder makes of the same bytes
    assert_close(out, pipeline._display_values(dirty.pixel_array, dirty, None), tolerance=0)


def test_native_path_renders_each_frame_of_a_multi_frame_object() -> None:
    ds = _grey(16, 12, False, window=(2048.0, 4096.0, "LINEAR"))
    first = np.frombuffer(ds.PixelData, np.uint16).reshape(64, 80)
    ds.NumberOfFrames = 2
    ds.PixelData = first.tobytes() + first[::-1].tobytes()
    assert pipeline.native_grey_frame(ds, 2) is not None
    one = decode_png(render(ds, RenderParams(media=PNG, frame=1)))
    two = decode_png(render(ds, RenderParams(media=PNG, frame=2)))
    assert_close(two, one[::-1], tolerance=0)
    assert pipeline.native_grey_frame(ds, 3) is None
    with pytest.raises(NotFound):
        render(ds, RenderParams(media=PNG, frame=3))


@pytest.mark.parametrize("name", ["examples_palette.dcm", "CT_small.dcm", "MR_small.dcm"])
def test_thumbnail_is_the_lanczos_reduction_of_the_full_image(name: str) -> None:
    ds = real_dataset(name)
    full = Image.open(io.BytesIO(render(ds, RenderParams(media=PNG))))
    for box in (40, 100):
        thumb = decode_png(render(ds, RenderParams(media=PNG, viewport=Viewport(box, box))))
        expected = np.asarray(full.resize((thumb.shape[1], thumb.shape[0]),
                                          Image.Resampling.LANCZOS))
        assert thumb.shape == expected.shape
        diff = np.abs(thumb.astype(np.int32) - expected)
        # grey images: the same to a grey level; the palette file's sharp synthetic
        # graphics differ by a few levels at edges, not on average
        assert diff.mean() < 0.5 and int(diff.max()) <= (12 if thumb.ndim == 3 else 1)
