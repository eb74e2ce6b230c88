"""WADO-RS: retrieve studies, series and instances, and their metadata (PS3.18 10.4).

Instances are sent as ``multipart/related; type="application/dicom"`` with each object's
stored bytes as they were received (transfer syntax ``*``, PS3.18 8.7.3.5.2): no decode,
no re-encode. The body is a sync generator that StreamingResponse runs in its threadpool,
reading one object at a time in chunks, so a study of any size streams in flat memory.
Metadata comes from the JSON headers kept in the index (:meth:`Archive.metadata`),
without touching object storage.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import BinaryIO

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import StreamingResponse

from ris.services import Services
from storage.archive import Archive, InstanceRef
from storage.errors import NotFound
from storage.index.query import Level, Query
from storage.origin import Origin
from viewer_api.deps import OriginDep, ServicesDep
from viewer_api.dicomweb.multipart import media_ranges, new_boundary, write_parts
from viewer_api.dicomweb.params import check_uid
from viewer_api.dicomweb.qido import DICOM_JSON, require_json

router = APIRouter(prefix="/dicomweb", tags=["dicomweb"])

DICOM = "application/dicom"
_ANY = None


def acceptable_syntaxes(accept: str | None) -> set[str] | None:
    """The transfer syntaxes the client accepts for ``application/dicom`` parts.

    ``None`` means any (``*``, PS3.18 8.7.3.5.2). Until transcoding exists, a request
    without ``transfer-syntax`` is also served as stored, as Orthanc does.

    Raises
    ------
    HTTPException
        406 when no media range allows ``multipart/related; type="application/dicom"``
        (PS3.18 8.7.5, e.g. a rendered or bulk data type).
    """
    if accept is None or not accept.strip():
        return _ANY
    syntaxes: set[str] = set()
    acceptable = False
    for media, params in media_ranges(accept):
        if media in ("*/*", "multipart/*"):
            return _ANY
        if media != "multipart/related" or params.get("type", DICOM) not in (DICOM,
                                                                             "application/*"):
            continue
        acceptable = True
        syntax = params.get("transfer-syntax", "*")
        if syntax == "*":
            return _ANY
        syntaxes.add(syntax)
    if not acceptable:
        raise HTTPException(406, 'only multipart/related; type="application/dicom" is available')
    return syntaxes


def _parts(archive: Archive, refs: list[InstanceRef]) -> Iterator[tuple[str, int, BinaryIO]]:
    """Each object's part, opened only when the writer reaches it."""
    for ref in refs:
        size, stream = archive.payload(ref)
        yield f"{DICOM}; transfer-syntax={ref.transfer_syntax_uid}", size, stream


def _retrieve(request: Request, services: Services, origin: Origin,
              query: Query) -> StreamingResponse:
    syntaxes = acceptable_syntaxes(request.headers.get("accept"))
    archive = services.archive
    refs = archive.locate(query, origin)
    if not refs:
        raise NotFound(f"no {query.level.value.lower()} with these UIDs")
    if syntaxes is not _ANY and any(r.transfer_syntax_uid not in syntaxes for r in refs):
        raise HTTPException(406, "the requested transfer syntax is not available "
                                 "(objects are served as stored)")
    boundary = new_boundary()
    return StreamingResponse(
        write_parts(_parts(archive, refs), boundary),
        media_type=f'multipart/related; type="{DICOM}"; boundary={boundary}')


def _json_array(first: str, rest: Iterator[str]) -> Iterator[bytes]:
    yield b"[" + first.encode("utf-8")
    for text in rest:
        yield b"," + text.encode("utf-8")
    yield b"]"


def _metadata(request: Request, services: Services, origin: Origin,
              query: Query) -> StreamingResponse:
    """The stored headers as one DICOM JSON array (PS3.18 10.4.1.1.2), streamed."""
    require_json(request)
    headers = services.archive.metadata(query, origin)
    first = next(headers, None)
    if first is None:  # the generator has ended and released its session
        raise NotFound(f"no {query.level.value.lower()} with these UIDs")
    return StreamingResponse(_json_array(first, headers), media_type=DICOM_JSON)


def _study(study: str) -> Query:
    return Query(Level.STUDY, {"StudyInstanceUID": check_uid(study, "Study Instance UID")})


def _series(study: str, series: str) -> Query:
    return Query(Level.SERIES, {"StudyInstanceUID": check_uid(study, "Study Instance UID"),
                                "SeriesInstanceUID": check_uid(series, "Series Instance UID")})


def _instance(study: str, series: str, instance: str) -> Query:
    filters = _series(study, series).filters
    filters["SOPInstanceUID"] = check_uid(instance, "SOP Instance UID")
    return Query(Level.IMAGE, filters)


@router.get("/studies/{study}")
def retrieve_study(study: str, request: Request, services: ServicesDep,
                   origin: OriginDep) -> StreamingResponse:
    """``GET /studies/{study}``: RetrieveStudy (PS3.18 10.4.1)."""
    return _retrieve(request, services, origin, _study(study))


@router.get("/studies/{study}/series/{series}")
def retrieve_series(study: str, series: str, request: Request, services: ServicesDep,
                    origin: OriginDep) -> StreamingResponse:
    """``GET /studies/{study}/series/{series}``: RetrieveSeries."""
    return _retrieve(request, services, origin, _series(study, series))


@router.get("/studies/{study}/series/{series}/instances/{instance}")
def retrieve_instance(study: str, series: str, instance: str, request: Request,
                      services: ServicesDep, origin: OriginDep) -> StreamingResponse:
    """``GET .../instances/{instance}``: RetrieveInstance (still a multipart answer)."""
    return _retrieve(request, services, origin, _instance(study, series, instance))


@router.get("/studies/{study}/metadata")
def retrieve_study_metadata(study: str, request: Request, services: ServicesDep,
                            origin: OriginDep) -> StreamingResponse:
    """``GET /studies/{study}/metadata``: one JSON header per instance of the study."""
    return _metadata(request, services, origin, _study(study))


@router.get("/studies/{study}/series/{series}/metadata")
def retrieve_series_metadata(study: str, series: str, request: Request,
                             services: ServicesDep, origin: OriginDep) -> StreamingResponse:
    """``GET /studies/{study}/series/{series}/metadata``."""
    return _metadata(request, services, origin, _series(study, series))


@router.get("/studies/{study}/series/{series}/instances/{instance}/metadata")
def retrieve_instance_metadata(study: str, series: str, instance: str, request: Request,
                               services: ServicesDep, origin: OriginDep) -> StreamingResponse:
    """``GET .../instances/{instance}/metadata``: a one-element array."""
    return _metadata(request, services, origin, _instance(study, series, instance))
