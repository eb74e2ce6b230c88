"""WADO-RS rendered resources and thumbnails (PS3.18 10.4.1.1.3 and 10.4.1.1.4).

``.../rendered`` and ``.../thumbnail`` of a study, series, instance or frame, as JPEG
(default) or PNG by the ``Accept`` header (PS3.18 8.7.4), with the ``window``,
``viewport`` and ``quality`` parameters of PS3.18 8.3.5.1 (``annotation`` is ignored).
A study or series is rendered as its representative instance; an instance as its first
frame. Routes are plain ``def``: FastAPI runs them in its threadpool, so decoding never
blocks the event loop (STYLE.md anti-pattern 4). Each calls one :class:`Renderer` method.
"""

from __future__ import annotations

from fastapi import APIRouter, HTTPException, Request, Response

from storage.index.query import Level, Query
from viewer_api.deps import OriginDep, RendererDep
from viewer_api.dicomweb.multipart import media_ranges
from viewer_api.dicomweb.params import check_uid
from viewer_api.rendering import MediaType, Rendered
from viewer_api.rendering.params import parse_frame, rs_params

router = APIRouter(prefix="/dicomweb", tags=["dicomweb"])


def negotiate(accept: str | None) -> MediaType:
    """The rendered media type for an ``Accept`` header (PS3.18 8.7.4; JPEG by default).

    Raises
    ------
    HTTPException
        406 when no acceptable media range is a type we render to (PS3.18 8.7.5).
    """
    ranges = media_ranges(accept)
    if not ranges:
        return MediaType.JPEG

    def weight(params: dict[str, str]) -> float:
        try:
            return float(params.get("q", "1"))
        except ValueError:
            return 1.0

    for media, _ in sorted(ranges, key=lambda r: -weight(r[1])):
        if media in ("*/*", "image/*", MediaType.JPEG):
            return MediaType.JPEG
        if media == MediaType.PNG:
            return MediaType.PNG
    raise HTTPException(406, "rendered resources are available as image/jpeg or image/png")


def respond(rendered: Rendered) -> Response:
    return Response(rendered.content, media_type=rendered.media.value,
                    headers={"Vary": "Accept"})


def _query(study: str, series: str = "", instance: str = "") -> Query:
    filters = {"StudyInstanceUID": check_uid(study, "Study Instance UID")}
    level = Level.STUDY
    if series:
        filters["SeriesInstanceUID"] = check_uid(series, "Series Instance UID")
        level = Level.SERIES
    if instance:
        filters["SOPInstanceUID"] = check_uid(instance, "SOP Instance UID")
        level = Level.IMAGE
    return Query(level, filters)


def _render(request: Request, renderer: RendererDep, origin: OriginDep, query: Query, *,
            thumbnail: bool, frame: str = "1") -> Response:
    params = rs_params(request.query_params, negotiate(request.headers.get("accept")),
                       frame=parse_frame(frame), thumbnail=thumbnail)
    if query.level == Level.IMAGE:
        return respond(renderer.instance(query, params, origin))
    return respond(renderer.representative(query, params, origin))


@router.get("/studies/{study}/rendered")
def rendered_study(study: str, request: Request, renderer: RendererDep,
                   origin: OriginDep) -> Response:
    """``GET /studies/{study}/rendered``: the study's representative instance."""
    return _render(request, renderer, origin, _query(study), thumbnail=False)


@router.get("/studies/{study}/thumbnail")
def thumbnail_study(study: str, request: Request, renderer: RendererDep,
                    origin: OriginDep) -> Response:
    """``GET /studies/{study}/thumbnail`` (PS3.18 10.4.1.1.4)."""
    return _render(request, renderer, origin, _query(study), thumbnail=True)


@router.get("/studies/{study}/series/{series}/rendered")
def rendered_series(study: str, series: str, request: Request, renderer: RendererDep,
                    origin: OriginDep) -> Response:
    """``GET /studies/{study}/series/{series}/rendered``: its representative instance."""
    return _render(request, renderer, origin, _query(study, series), thumbnail=False)


@router.get("/studies/{study}/series/{series}/thumbnail")
def thumbnail_series(study: str, series: str, request: Request, renderer: RendererDep,
                     origin: OriginDep) -> Response:
    """``GET /studies/{study}/series/{series}/thumbnail``."""
    return _render(request, renderer, origin, _query(study, series), thumbnail=True)


@router.get("/studies/{study}/series/{series}/instances/{instance}/rendered")
def rendered_instance(study: str, series: str, instance: str, request: Request,
                      renderer: RendererDep, origin: OriginDep) -> Response:
    """``GET .../instances/{instance}/rendered``: the first frame."""
    return _render(request, renderer, origin, _query(study, series, instance),
                   thumbnail=False)


@router.get("/studies/{study}/series/{series}/instances/{instance}/thumbnail")
def thumbnail_instance(study: str, series: str, instance: str, request: Request,
                       renderer: RendererDep, origin: OriginDep) -> Response:
    """``GET .../instances/{instance}/thumbnail``."""
    return _render(request, renderer, origin, _query(study, series, instance),
                   thumbnail=True)


@router.get("/studies/{study}/series/{series}/instances/{instance}/frames/{frame}/rendered")
def rendered_frame(study: str, series: str, instance: str, frame: str, request: Request,
                   renderer: RendererDep, origin: OriginDep) -> Response:
    """``GET .../frames/{frame}/rendered``: one frame, numbered from 1."""
    return _render(request, renderer, origin, _query(study, series, instance),
                   thumbnail=False, frame=frame)


@router.get("/studies/{study}/series/{series}/instances/{instance}/frames/{frame}/thumbnail")
def thumbnail_frame(study: str, series: str, instance: str, frame: str, request: Request,
                    renderer: RendererDep, origin: OriginDep) -> Response:
    """``GET .../frames/{frame}/thumbnail``."""
    return _render(request, renderer, origin, _query(study, series, instance),
                   thumbnail=True, frame=frame)
