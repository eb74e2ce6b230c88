"""WADO-URI: ``GET /wado?requestType=WADO&studyUID=&seriesUID=&objectUID=`` (PS3.18 9).

One instance, as a rendered JPEG (default) or PNG, or as the stored object itself
(``contentType=application/dicom``, sent as received: PS3.18 9.1.2.3.2 lets the server
keep the original transfer syntax, and transcoding is a separate operation). Rendering
parameters (PS3.18 9.1.2.2): ``windowCenter``/``windowWidth``, ``rows``/``columns``
(maxima, aspect kept), ``frameNumber``, ``imageQuality``; ``annotation``, ``region`` and
``charset`` are accepted and ignored, ``anonymize=yes`` is refused (we never send an
identified object to a client that asked for a de-identified one).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import BinaryIO

from fastapi import APIRouter, HTTPException, Request, Response
from fastapi.responses import StreamingResponse

from storage.archive import Archive, InstanceRef
from storage.errors import InvalidQuery, NotFound
from storage.index.query import Level, Query
from viewer_api.deps import OriginDep, RendererDep, ServicesDep
from viewer_api.dicomweb.multipart import CHUNK, parse_media_type
from viewer_api.dicomweb.params import check_uid
from viewer_api.rendering import MediaType, RenderParams, Viewport
from viewer_api.rendering.params import DEFAULT_QUALITY, parse_quality, window

router = APIRouter(tags=["wado-uri"])

DICOM = "application/dicom"
_RENDER_PARAMS = ("windowCenter", "windowWidth", "rows", "columns", "frameNumber",
                  "imageQuality", "region", "annotation")


def content_type(value: str | None) -> str:
    """The one content type to send for ``contentType`` (PS3.18 9.1.2.1.4), JPEG by default.

    The parameter may list several types; the first one we produce wins.

    Raises
    ------
    HTTPException
        406 when none of the listed types is produced here.
    """
    if not value or not value.strip():
        return MediaType.JPEG.value
    for item in value.split(","):
        media, _ = parse_media_type(item)
        if media in ("*/*", "image/*", MediaType.JPEG):
            return MediaType.JPEG.value
        if media in (MediaType.PNG, DICOM):
            return media
    raise HTTPException(406, "contentType must be image/jpeg, image/png or application/dicom")


def _one(params: dict[str, str], name: str) -> str:
    value = params.get(name, "").strip()
    if not value:
        raise InvalidQuery(f"{name} is required")
    return value


def _positive(params: dict[str, str], name: str) -> int | None:
    text = params.get(name, "").strip()
    if not text:
        return None
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise InvalidQuery(f"{name} must be a positive integer")
    return value


def render_params(params: dict[str, str], media: MediaType) -> RenderParams:
    """The :class:`RenderParams` of a WADO-URI image request (PS3.18 9.1.2.2)."""
    center, width = params.get("windowCenter", ""), params.get("windowWidth", "")
    if bool(center.strip()) != bool(width.strip()):
        raise InvalidQuery("windowCenter and windowWidth go together")
    win = window(center, width) if center.strip() else None
    rows, columns = _positive(params, "rows"), _positive(params, "columns")
    viewport = Viewport(columns, rows) if rows or columns else None
    quality = params.get("imageQuality", "").strip()
    return RenderParams(media=media, frame=_positive(params, "frameNumber") or 1, window=win,
                        viewport=viewport,
                        quality=parse_quality(quality) if quality else DEFAULT_QUALITY)


def _chunks(fh: BinaryIO) -> Iterator[bytes]:
    with fh:
        while chunk := fh.read(CHUNK):
            yield chunk


def _stored(archive: Archive, ref: InstanceRef, params: dict[str, str]) -> StreamingResponse:
    """The object as stored (PS3.18 9.1.2.3.2); a different ``transferSyntax`` is 406."""
    wanted = params.get("transferSyntax", "").strip()
    if wanted and wanted != ref.transfer_syntax_uid:
        raise HTTPException(406, "the object is served in its stored transfer syntax only")
    size, stream = archive.payload(ref)  # as stored, or with corrected demographics
    return StreamingResponse(_chunks(stream), media_type=DICOM,
                             headers={"Content-Length": str(size)})


@router.get("/wado")
def wado(request: Request, services: ServicesDep, renderer: RendererDep,
         origin: OriginDep) -> Response:
    """``GET /wado``: one instance, rendered or as stored (PS3.18 9.1)."""
    params = dict(request.query_params)
    if params.get("requestType") != "WADO":
        raise InvalidQuery("requestType must be WADO")
    if params.get("anonymize", "").strip().lower() == "yes":
        raise InvalidQuery("anonymize=yes is not supported")
    query = Query(Level.IMAGE, {
        "StudyInstanceUID": check_uid(_one(params, "studyUID"), "studyUID"),
        "SeriesInstanceUID": check_uid(_one(params, "seriesUID"), "seriesUID"),
        "SOPInstanceUID": check_uid(_one(params, "objectUID"), "objectUID"),
    })
    media = content_type(params.get("contentType"))
    if media == DICOM:
        if any(params.get(name) for name in _RENDER_PARAMS if name != "annotation"):
            raise InvalidQuery("rendering parameters do not apply to application/dicom")
        refs = services.archive.locate(query, origin)
        if not refs:
            raise NotFound("no instance with these UIDs")
        return _stored(services.archive, refs[0], params)
    rendered = renderer.instance(query, render_params(params, MediaType(media)), origin)
    return Response(rendered.content, media_type=rendered.media.value)
