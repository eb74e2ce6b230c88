"""Media types of pixel data and bulk data, and their ``Accept`` negotiation (PS3.18 8.7).

Frames and bulk data are sent as ``multipart/related`` parts (PS3.18 8.7.3.3). Which part
media type goes with which transfer syntax is PS3.18 Table 8.7.3-5 ("Transfer Syntax UID
for ... Media Types"); the first syntax of each row is the type's default. HTJ2K has its
own type (image/jphc); ``image/x-jls`` and ``image/x-dicom-rle`` are the names older
clients (cornerstone, dicomweb-client) still send.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from fastapi import HTTPException
from pydicom.uid import UID, ExplicitVRLittleEndian

from viewer_api.dicomweb.multipart import media_ranges

OCTET_STREAM = "application/octet-stream"

PIXEL_MEDIA_TYPES: dict[str, tuple[str, ...]] = {
    OCTET_STREAM: (ExplicitVRLittleEndian,),
    "image/jpeg": ("1.2.840.10008.1.2.4.50", "1.2.840.10008.1.2.4.51",
                   "1.2.840.10008.1.2.4.57", "1.2.840.10008.1.2.4.70"),
    "image/jls": ("1.2.840.10008.1.2.4.80", "1.2.840.10008.1.2.4.81"),
    "image/jp2": ("1.2.840.10008.1.2.4.90", "1.2.840.10008.1.2.4.91"),
    "image/jpx": ("1.2.840.10008.1.2.4.92", "1.2.840.10008.1.2.4.93"),
    "image/jphc": ("1.2.840.10008.1.2.4.201", "1.2.840.10008.1.2.4.202",
                   "1.2.840.10008.1.2.4.203"),
    "image/jxl": ("1.2.840.10008.1.2.4.110", "1.2.840.10008.1.2.4.111",
                  "1.2.840.10008.1.2.4.112"),
    "image/dicom-rle": ("1.2.840.10008.1.2.5",),
    "video/mpeg2": ("1.2.840.10008.1.2.4.100", "1.2.840.10008.1.2.4.101"),
    "video/mp4": ("1.2.840.10008.1.2.4.102", "1.2.840.10008.1.2.4.103",
                  "1.2.840.10008.1.2.4.104", "1.2.840.10008.1.2.4.105",
                  "1.2.840.10008.1.2.4.106"),
    "video/H265": ("1.2.840.10008.1.2.4.107", "1.2.840.10008.1.2.4.108"),
}
"""PS3.18 Table 8.7.3-5: media type → its transfer syntaxes (the default first)."""

ALIASES = {"image/x-jls": "image/jls", "image/x-dicom-rle": "image/dicom-rle",
           "video/mpeg": "video/mpeg2", "video/h265": "video/H265"}


def media_type_of(transfer_syntax_uid: str) -> str:
    """The media type of frames stored in ``transfer_syntax_uid`` (octet-stream if native)."""
    for media, syntaxes in PIXEL_MEDIA_TYPES.items():
        if transfer_syntax_uid in syntaxes:
            return media
    return OCTET_STREAM


@dataclass(frozen=True)
class FramePlan:
    """How frames are sent: the part media type, its transfer syntax, and whether the
    stored compressed frames must be decoded to native bytes first."""

    media_type: str
    transfer_syntax_uid: str
    decode: bool

    @property
    def content_type(self) -> str:
        # cornerstone reads the transfer-syntax parameter of each part to pick its decoder.
        return f"{self.media_type}; transfer-syntax={self.transfer_syntax_uid}"


def plan_frames(accept: str | None, stored: str,
                can_decode: Callable[[str], bool]) -> FramePlan:
    """Choose how to send frames stored in ``stored`` for this ``Accept`` header.

    The media ranges are tried in order; the first that can be honoured wins
    (PS3.18 8.7.5). ``transfer-syntax=*`` or ``*/*`` take the frames as stored
    (compressed frames in their own media type, or labelled application/octet-stream
    when that is the asked type, as OHIF asks). Native frames are always little endian
    Explicit VR Little Endian bytes. Compressed frames are decoded when uncompressed
    application/octet-stream is asked (its default syntax, Table 8.7.3-5) and pydicom
    has a decoder. No ``Accept`` is the default ``multipart/related;
    type="application/octet-stream"``.

    Raises
    ------
    HTTPException
        406 when no media range can be honoured.
    """
    compressed = UID(stored).is_compressed
    native = stored if compressed else ExplicitVRLittleEndian
    natural = FramePlan(media_type_of(stored), native, False)
    ranges = media_ranges(accept) if accept and accept.strip() else [
        ("multipart/related", {"type": OCTET_STREAM})]
    for media, params in ranges:
        if media in ("*/*", "multipart/*"):
            return natural
        if media != "multipart/related":
            continue
        kind = params.get("type", OCTET_STREAM).lower()
        kind = ALIASES.get(kind, kind)
        syntax = params.get("transfer-syntax")
        if kind in ("*/*", "*"):
            return natural
        if kind == OCTET_STREAM:
            if syntax == "*" or syntax == stored:
                return FramePlan(OCTET_STREAM, native, False)
            if syntax in (None, ExplicitVRLittleEndian, "1.2.840.10008.1.2"):
                if not compressed:
                    return FramePlan(OCTET_STREAM, ExplicitVRLittleEndian, False)
                if can_decode(stored):
                    return FramePlan(OCTET_STREAM, ExplicitVRLittleEndian, True)
            continue
        if kind.endswith("/*") and compressed and natural.media_type.startswith(kind[:-1]):
            return natural
        allowed = {k.lower(): v for k, v in PIXEL_MEDIA_TYPES.items()}.get(kind.lower(), ())
        if stored in allowed and syntax in (None, "*", stored):
            return FramePlan(natural.media_type, stored, False)
    raise HTTPException(406, f"the frames are stored as {stored}; none of the accepted "
                             "media types can be produced from it")
