"""WADO-RS: retrieve studies, series and instances, and their metadata (PS3.18 10.4).

Instances are sent as ``multipart/related; type="application/dicom"`` with each object's
stored bytes as they were received (transfer syntax ``*``, PS3.18 8.7.3.5.2): no decode,
no re-encode. When the client names transfer syntaxes that do not include the stored
one, the object is transcoded (:mod:`storage.transcode`) to Explicit (or Implicit) VR
Little Endian, one instance at a time. The body is a sync generator that
StreamingResponse runs in its threadpool, reading one object at a time in chunks, so a
study of any size streams in flat memory.
Metadata comes from the JSON headers kept in the index (:meth:`Archive.metadata`),
without touching object storage; their BulkDataURI values are made absolute here.
"""

from __future__ import annotations

from collections.abc import Iterator
from io import BytesIO
from typing import BinaryIO

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import StreamingResponse
from pydicom.uid import ExplicitVRLittleEndian

from ris.services import Services
from storage.archive import Archive, InstanceRef
from storage.dicomio import BULK_URI_PREFIX
from storage.errors import NotFound
from storage.index.query import Level, Query
from storage.origin import Origin
from storage.transcode import TARGETS, can_transcode, transcode
from viewer_api.deps import OriginDep, ServicesDep
from viewer_api.dicomweb.multipart import body_length, media_ranges, new_boundary, write_parts
from viewer_api.dicomweb.params import check_uid
from viewer_api.dicomweb.qido import DICOM_JSON, require_json, service_url

router = APIRouter(prefix="/dicomweb", tags=["dicomweb"])

DICOM = "application/dicom"
_ANY = None


def acceptable_syntaxes(accept: str | None) -> set[str] | None:
    """The transfer syntaxes the client accepts for ``application/dicom`` parts.

    ``None`` means any (``*``, PS3.18 8.7.3.5.2). A request without ``transfer-syntax``
    is also served as stored, as Orthanc does: transcoding happens only when asked.

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


def target_syntax(stored: str, syntaxes: set[str] | None) -> str | None:
    """The syntax to send an object stored in ``stored`` in: itself when acceptable,
    else the first uncompressed syntax it can be transcoded to (Explicit VR Little
    Endian preferred, PS3.18 8.7.3.5.2); ``None`` when none can be produced."""
    if syntaxes is _ANY or stored in syntaxes:
        return stored
    for wanted in sorted(syntaxes & TARGETS, key=lambda t: t != ExplicitVRLittleEndian):
        if can_transcode(stored, wanted):
            return wanted
    return None


def _content_type(syntax: str) -> str:
    return f"{DICOM}; transfer-syntax={syntax}"


def _parts(archive: Archive, plan: list[tuple[InstanceRef, str]]
           ) -> Iterator[tuple[str, int, BinaryIO]]:
    """Each object's part, opened (and transcoded if asked) only when the writer reaches it."""
    for ref, syntax in plan:
        content_type = _content_type(syntax)
        size, stream = archive.payload(ref)  # as stored, or with corrected demographics
        if syntax == ref.transfer_syntax_uid:
            yield content_type, size, stream
            continue
        with stream:
            data = transcode(stream, syntax)
        yield content_type, len(data), BytesIO(data)


def _retrieve(request: Request, services: Services, origin: Origin,
              query: Query) -> StreamingResponse:
    """Stream the objects; 406 before the first byte if one cannot be produced.

    PS3.18 8.7.5: the origin server answers 406 when it cannot send a representation the
    Accept header allows. A study where one instance (a video, a syntax without a
    decoder) cannot be transcoded is refused whole rather than sent with that instance
    silently missing: the status of a streamed answer cannot change once it started.
    """
    syntaxes = acceptable_syntaxes(request.headers.get("accept"))
    archive = services.archive
    refs = archive.locate(query, origin)
    if not refs:
        raise NotFound(f"no {query.level.value.lower()} with these UIDs")
    plan = [(ref, target_syntax(ref.transfer_syntax_uid, syntaxes)) for ref in refs]
    missing = sorted({ref.transfer_syntax_uid for ref, syntax in plan if syntax is None})
    if missing:
        raise HTTPException(406, "the requested transfer syntax cannot be produced from "
                                 f"{', '.join(missing)}; available: the stored syntax, "
                                 f"{', '.join(sorted(TARGETS))}")
    boundary = new_boundary()
    headers = None
    if all(syntax == ref.transfer_syntax_uid and not ref.coerce for ref, syntax in plan):
        # Every part is the object as stored, whose size the index holds: the whole
        # length is known, so no chunked framing (and its copy of every chunk).
        length = body_length(((_content_type(r.transfer_syntax_uid), r.size) for r in refs),
                             boundary)
        headers = {"Content-Length": str(length)}
    return StreamingResponse(
        write_parts(_parts(archive, [(r, str(t)) for r, t in plan]), boundary),
        headers=headers, media_type=f'multipart/related; type="{DICOM}"; boundary={boundary}')


def _json_array(first: str, rest: Iterator[str], service: str) -> Iterator[bytes]:
    """The headers as one JSON array, their BulkDataURI values made absolute.

    Stored URIs are relative to the service root (``/studies/...``); prefixing the
    service URL gives absolute URIs, which every client resolves as they are (OHIF keeps
    ``http`` URIs unchanged), like the RetrieveURL values of QIDO-RS.
    """
    absolute = BULK_URI_PREFIX + service
    yield b"[" + first.replace(BULK_URI_PREFIX, absolute).encode("utf-8")
    for text in rest:
        yield b"," + text.replace(BULK_URI_PREFIX, absolute).encode("utf-8")
    yield b"]"


def _metadata(request: Request, services: Services, origin: Origin,
              query: Query) -> StreamingResponse:
    """The stored headers as one DICOM JSON array (PS3.18 10.4.1.1.2), streamed."""
    require_json(request)
    headers = services.archive.metadata(query, origin)
    first = next(headers, None)
    if first is None:  # the generator has ended and released its session
        raise NotFound(f"no {query.level.value.lower()} with these UIDs")
    return StreamingResponse(_json_array(first, headers, service_url(request)),
                             media_type=DICOM_JSON)


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
