"""Render parameters: what a rendered or thumbnail request asks for, checked and normalised.

The WADO-RS query parameters of PS3.18 8.3.5.1 (``window``, ``viewport``, ``quality``;
``annotation`` is accepted and ignored) and the WADO-URI parameters of PS3.18 9.1.2.2
(``windowCenter``/``windowWidth``, ``rows``/``columns``, ``frameNumber``, ``imageQuality``)
both become one :class:`RenderParams`, so one pipeline and one cache key serve both.
Malformed values are refused with :class:`~storage.errors.InvalidQuery` (HTTP 400).
"""

from __future__ import annotations

import enum
import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass

from storage.errors import InvalidQuery


class MediaType(enum.StrEnum):
    """The rendered media types served (PS3.18 8.7.4, Table 8.7.4-1 "Rendered Media Types").

    JPEG is the default a client gets without asking; PNG is lossless.
    """

    JPEG = "image/jpeg"
    PNG = "image/png"


class VoiFunction(enum.StrEnum):
    """VOI LUT Function (0028,1056), PS3.3 C.11.2.1.3; the ``window`` parameter's third
    value is its lower-case form with ``-`` (PS3.18 8.3.5.1.4)."""

    LINEAR = "LINEAR"
    LINEAR_EXACT = "LINEAR_EXACT"
    SIGMOID = "SIGMOID"


@dataclass(frozen=True)
class Window:
    """A window center and width in modality units (after the Modality LUT, PS3.3 C.11.2)."""

    center: float
    width: float
    function: VoiFunction = VoiFunction.LINEAR


@dataclass(frozen=True)
class Viewport:
    """The box the rendered image must fit in, and the source region to take (PS3.18 8.3.5.1.3).

    ``width``/``height`` of ``None`` leave that side free (WADO-URI gives only ``rows`` or
    only ``columns``). ``sx, sy, sw, sh`` select a region of the source image in pixels; a
    negative ``sw``/``sh`` flips the image along that axis.
    """

    width: int | None
    height: int | None
    sx: int = 0
    sy: int = 0
    sw: int | None = None
    sh: int | None = None


THUMBNAIL = Viewport(128, 128)
"""The default thumbnail box: 128 pixels on the longest side (PS3.18 8.3.5.1.3 leaves it to us)."""

DEFAULT_QUALITY = 90
THUMBNAIL_QUALITY = 80


@dataclass(frozen=True)
class RenderParams:
    """One rendering, fully specified: the cache key is made from these fields.

    ``frame`` counts from 1, as PS3.18 frame numbers do.
    """

    media: MediaType = MediaType.JPEG
    frame: int = 1
    window: Window | None = None
    viewport: Viewport | None = None
    quality: int = DEFAULT_QUALITY

    def key(self) -> dict[str, object]:
        """The parameters as plain values, for :func:`storage.cache.cache_key`."""
        out = asdict(self)
        if self.media is MediaType.PNG:
            out["quality"] = None  # PNG is lossless: quality changes nothing
        return out


# -- parsing ----------------------------------------------------------------------------------
def _number(text: str, what: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value):
        raise InvalidQuery(f"{what} must be a number")
    return value


def _integer(text: str, what: str, minimum: int | None = None) -> int:
    try:
        value = int(text.strip())
    except ValueError:
        raise InvalidQuery(f"{what} must be an integer") from None
    if minimum is not None and value < minimum:
        raise InvalidQuery(f"{what} must be at least {minimum}")
    return value


def window(center: str, width: str, function: str = "linear") -> Window:
    """A checked :class:`Window`; the width rules are those of PS3.3 C.11.2.1.2.1/C.11.2.1.3."""
    try:
        func = VoiFunction(function.strip().upper().replace("-", "_"))
    except ValueError:
        raise InvalidQuery("window function must be linear, linear-exact or sigmoid") from None
    c, w = _number(center, "window center"), _number(width, "window width")
    if func is VoiFunction.LINEAR and w < 1:
        raise InvalidQuery("window width must be at least 1 for a linear window")
    if w <= 0:
        raise InvalidQuery("window width must be greater than 0")
    return Window(c, w, func)


def parse_window(text: str) -> Window:
    """``window=center,width[,function]`` (PS3.18 8.3.5.1.4)."""
    values = text.split(",")
    if len(values) not in (2, 3):
        raise InvalidQuery("window must be center,width,function")
    return window(*values)


def parse_viewport(text: str) -> Viewport:
    """``viewport=vw,vh`` or ``viewport=vw,vh,sx,sy,sw,sh`` (PS3.18 8.3.5.1.3).

    ``vw`` or ``vh`` may be empty to leave that side free; ``sx,sy`` default to 0 and
    ``sw,sh`` to the rest of the image.
    """
    values = [v.strip() for v in text.split(",")]
    if len(values) not in (2, 6):
        raise InvalidQuery("viewport must be vw,vh or vw,vh,sx,sy,sw,sh")
    vw = _integer(values[0], "viewport width", 1) if values[0] else None
    vh = _integer(values[1], "viewport height", 1) if values[1] else None
    if vw is None and vh is None:
        raise InvalidQuery("viewport needs a width or a height")
    if len(values) == 2:
        return Viewport(vw, vh)
    sx = _integer(values[2], "viewport sx", 0) if values[2] else 0
    sy = _integer(values[3], "viewport sy", 0) if values[3] else 0
    sw = _integer(values[4], "viewport sw") if values[4] else None
    sh = _integer(values[5], "viewport sh") if values[5] else None
    if sw == 0 or sh == 0:
        raise InvalidQuery("viewport sw and sh must not be 0")
    return Viewport(vw, vh, sx, sy, sw, sh)


def parse_quality(text: str) -> int:
    """``quality`` / ``imageQuality``: 1 (worst) to 100 (best) (PS3.18 8.3.5.1.5)."""
    value = _integer(text, "quality", 1)
    if value > 100:
        raise InvalidQuery("quality must be between 1 and 100")
    return value


def parse_frame(text: str) -> int:
    """One frame number, counting from 1 (PS3.18 8.3.3.1; a rendered frame is one frame)."""
    if "," in text:
        raise InvalidQuery("a rendered frame request names exactly one frame")
    return _integer(text, "frame number", 1)


def rs_params(query: Mapping[str, str], media: MediaType, *, frame: int = 1,
              thumbnail: bool = False) -> RenderParams:
    """The :class:`RenderParams` of a WADO-RS rendered or thumbnail request (PS3.18 8.3.5),
    to be sent as ``media`` (chosen from the ``Accept`` header by the route)."""
    win = parse_window(query["window"]) if query.get("window") else None
    viewport = parse_viewport(query["viewport"]) if query.get("viewport") else None
    quality = parse_quality(query["quality"]) if query.get("quality") else None
    if thumbnail:
        viewport = viewport or THUMBNAIL
        quality = quality or THUMBNAIL_QUALITY
    return RenderParams(media=media, frame=frame, window=win, viewport=viewport,
                        quality=quality or DEFAULT_QUALITY)
