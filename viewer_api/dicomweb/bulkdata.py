"""WADO-RS bulk data: the targets of the BulkDataURI values in ``/metadata`` (PS3.18 10.4).

``GET .../instances/{instance}/bulkdata/{path}``, where ``path`` is the tag path the stored
header gave (``7FE00010``, ``00880200/0/7FE00010``). The answer is ``multipart/related``
(PS3.18 8.7.3.3): one ``application/octet-stream`` part with the little endian value;
encapsulated pixel data is sent frame by frame, negotiated like RetrieveFrames.
"""

from __future__ import annotations

from io import BytesIO

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import StreamingResponse
from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian

from storage.bulkdata import parse_path
from storage.frames import can_decode, check_frame_numbers
from viewer_api.deps import OriginDep, ServicesDep
from viewer_api.dicomweb.frames import frame_parts, frames_response, instance_query
from viewer_api.dicomweb.mediatypes import OCTET_STREAM, plan_frames
from viewer_api.dicomweb.multipart import media_ranges, new_boundary, write_parts

router = APIRouter(prefix="/dicomweb", tags=["dicomweb"])

_PIXEL_TAGS = {0x7FE00008, 0x7FE00009, 0x7FE00010}


def require_octet_stream(accept: str | None) -> None:
    """406 unless ``multipart/related; type="application/octet-stream"`` is acceptable.

    Uncompressed bulk data is application/octet-stream, Explicit VR Little Endian
    (PS3.18 Table 8.7.3-5); no ``Accept`` means that default.
    """
    if accept is None or not accept.strip():
        return
    for media, params in media_ranges(accept):
        if media in ("*/*", "multipart/*"):
            return
        if media == "multipart/related" and params.get("type", OCTET_STREAM).lower() in (
                OCTET_STREAM, "*/*", "application/*") and params.get(
                "transfer-syntax", "*") in ("*", ExplicitVRLittleEndian,
                                            ImplicitVRLittleEndian):
            return
    raise HTTPException(406, 'bulk data is multipart/related; type="application/octet-stream"')


@router.get("/studies/{study}/series/{series}/instances/{instance}/bulkdata/{path:path}")
def retrieve_bulkdata(study: str, series: str, instance: str, path: str, request: Request,
                      services: ServicesDep, origin: OriginDep) -> StreamingResponse:
    """``GET .../bulkdata/{path}``: one bulk data value (400 bad path, 404 none, 406)."""
    query = instance_query(study, series, instance)
    tags = parse_path(path)
    accept = request.headers.get("accept")
    archive = services.archive
    ref = archive.locate_pixels(query, origin, action="bulkdata", detail={"path": path})
    if len(tags) == 1 and tags[0] in _PIXEL_TAGS and ref.encapsulated:
        numbers = list(range(1, ref.number_of_frames + 1))
        check_frame_numbers(ref, numbers)  # 404 when the header has no pixel data
        plan = plan_frames(accept, ref.transfer_syntax_uid, can_decode)
        return frames_response(frame_parts(archive, ref, numbers, plan), plan)
    require_octet_stream(accept)
    if len(tags) == 1 and tags[0] in _PIXEL_TAGS:
        value = archive.frame_reader(ref).native_value()
    else:
        value = archive.bulk_value(ref, tags)
    boundary = new_boundary()
    return StreamingResponse(
        write_parts(iter([(OCTET_STREAM, len(value), BytesIO(value))]), boundary),
        media_type=f'multipart/related; type="{OCTET_STREAM}"; boundary={boundary}')
