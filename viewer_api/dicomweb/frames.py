"""WADO-RS RetrieveFrames: ``.../instances/{instance}/frames/{list}`` (PS3.18 10.4.1.1.3).

Each requested frame is one part of a ``multipart/related`` answer, in the order asked.
Frames are read from object storage with ranged reads (:mod:`storage.frames`), one at a
time as the response is written. What each part holds is negotiated from ``Accept``
(:func:`viewer_api.dicomweb.mediatypes.plan_frames`): compressed frames as stored, with
their media type and ``transfer-syntax`` parameter, or decoded to native bytes when
uncompressed ``application/octet-stream`` is asked.

Only ``frames/{list}`` is routed here; ``frames/{n}/rendered`` has one more path segment
and belongs to the rendered resources.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from io import BytesIO
from typing import BinaryIO

from fastapi import APIRouter, Request
from fastapi.responses import StreamingResponse

from storage.archive import Archive
from storage.errors import InvalidQuery
from storage.frames import PixelRef, can_decode, check_frame_numbers, decode_frame
from storage.index.query import Level, Query
from viewer_api.deps import OriginDep, ServicesDep
from viewer_api.dicomweb.mediatypes import FramePlan, plan_frames
from viewer_api.dicomweb.multipart import new_boundary, write_parts
from viewer_api.dicomweb.params import check_uid

router = APIRouter(prefix="/dicomweb", tags=["dicomweb"])

MAX_FRAMES_PER_REQUEST = 10_000
_FRAME_LIST = re.compile(r"^[0-9]+(,[0-9]+)*$")


def frame_numbers(value: str) -> list[int]:
    """``"1,3,5"`` → ``[1, 3, 5]``; refused (400) unless a list of distinct numbers ≥ 1.

    PS3.18 10.4.1.1.3: a comma-separated list of one or more non-duplicate frame numbers,
    counted from 1.
    """
    value = value.replace("%2C", ",").replace("%2c", ",").strip()
    if not _FRAME_LIST.match(value):
        raise InvalidQuery("the frame list must be frame numbers separated by commas")
    numbers = [int(n) for n in value.split(",")]
    if any(n < 1 for n in numbers):
        raise InvalidQuery("frame numbers start at 1")
    if len(set(numbers)) != len(numbers):
        raise InvalidQuery("the frame list repeats a frame number")
    if len(numbers) > MAX_FRAMES_PER_REQUEST:
        raise InvalidQuery(f"at most {MAX_FRAMES_PER_REQUEST} frames per request")
    return numbers


def instance_query(study: str, series: str, instance: str) -> Query:
    """The instance a frames or bulk data URL names, its UIDs checked first (400)."""
    return Query(Level.IMAGE, {
        "StudyInstanceUID": check_uid(study, "Study Instance UID"),
        "SeriesInstanceUID": check_uid(series, "Series Instance UID"),
        "SOPInstanceUID": check_uid(instance, "SOP Instance UID")})


def frame_parts(archive: Archive, ref: PixelRef, numbers: list[int],
                plan: FramePlan) -> Iterator[tuple[str, int, BinaryIO]]:
    """The parts of a frames answer; the first frame is read before the answer starts.

    Reading the first frame eagerly turns a missing object or unreadable pixel data into
    a problem response instead of a cut stream.
    """
    reader = archive.frame_reader(ref)

    def part(number: int) -> tuple[str, int, BinaryIO]:
        data = reader.frame(number)
        if plan.decode:
            data = decode_frame(ref, data)
        return plan.content_type, len(data), BytesIO(data)

    first = part(numbers[0])

    def rest() -> Iterator[tuple[str, int, BinaryIO]]:
        yield first
        for number in numbers[1:]:
            yield part(number)

    return rest()


def frames_response(parts: Iterator[tuple[str, int, BinaryIO]],
                    plan: FramePlan) -> StreamingResponse:
    boundary = new_boundary()
    return StreamingResponse(
        write_parts(parts, boundary),
        media_type=f'multipart/related; type="{plan.media_type}"; boundary={boundary}')


@router.get("/studies/{study}/series/{series}/instances/{instance}/frames/{frames}")
def retrieve_frames(study: str, series: str, instance: str, frames: str, request: Request,
                    services: ServicesDep, origin: OriginDep) -> StreamingResponse:
    """``GET .../instances/{instance}/frames/{list}``: RetrieveFrames (PS3.18 10.4.1.1.3).

    400 for a malformed UID or frame list, 404 for an unknown instance or a frame it does
    not have, 406 when no accepted media type can be produced.
    """
    query = instance_query(study, series, instance)
    numbers = frame_numbers(frames)
    ref = services.archive.locate_pixels(query, origin, action="frames",
                                         detail={"frames": numbers[:20]})
    check_frame_numbers(ref, numbers)
    plan = plan_frames(request.headers.get("accept"), ref.transfer_syntax_uid, can_decode)
    return frames_response(frame_parts(services.archive, ref, numbers, plan), plan)
