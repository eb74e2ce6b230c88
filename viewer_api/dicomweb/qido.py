"""QIDO-RS: search for studies, series and instances (PS3.18 10.6).

Thin routes: the request is translated by :mod:`viewer_api.dicomweb.params` into the
:class:`Query` C-FIND uses, :meth:`Archive.find` matches it (and audits it), and each
match is returned as a DICOM JSON object (PS3.18 F.2) with its RetrieveURL. Routes are
plain ``def``: FastAPI runs them in its threadpool, so the synchronous index never
blocks the event loop.
"""

from __future__ import annotations

import json
from typing import Any

from fastapi import APIRouter, HTTPException, Request, Response

from ris.services import Services
from storage.index.match import Match
from storage.index.query import Level
from storage.origin import Origin
from viewer_api.deps import OriginDep, ServicesDep
from viewer_api.dicomweb.multipart import media_ranges
from viewer_api.dicomweb.params import check_uid, qido_query, resource_url

DICOM_JSON = "application/dicom+json"
_JSON_TYPES = {"*/*", "application/*", DICOM_JSON, "application/json"}

router = APIRouter(prefix="/dicomweb", tags=["dicomweb"])
INSTANCE_AVAILABILITY, RETRIEVE_URL = 0x00080056, 0x00081190
STUDY_UID, SERIES_UID, SOP_INSTANCE_UID = 0x0020000D, 0x0020000E, 0x00080018


def service_url(request: Request) -> str:
    """The absolute base of the DICOMweb service, for RetrieveURL values."""
    return f"{str(request.base_url).rstrip('/')}/dicomweb"


def require_json(request: Request) -> None:
    """406 unless the client accepts DICOM JSON (PS3.18 8.7.5; XML is not offered).

    No ``Accept`` header means the default, ``application/dicom+json``.
    """
    accept = request.headers.get("accept")
    if accept is None or not accept.strip():
        return
    if not any(media in _JSON_TYPES for media, _ in media_ranges(accept)):
        raise HTTPException(406, "only application/dicom+json is available")


def warning_header(request: Request, text: str) -> str:
    """An RFC 9111 ``Warning`` value with code 299, as PS3.18 8.3.4.4 uses them."""
    return f'299 {service_url(request)} "{text}"'


def _match_json(match: Match, level: Level, service: str) -> dict[str, Any]:
    """One match as DICOM JSON, with InstanceAvailability and RetrieveURL added."""
    match.set(INSTANCE_AVAILABILITY, "CS", "ONLINE")
    series = str(match.get(SERIES_UID) or "") if level != Level.STUDY else ""
    instance = str(match.get(SOP_INSTANCE_UID) or "") if level == Level.IMAGE else ""
    match.set(RETRIEVE_URL, "UR", resource_url(service, str(match.get(STUDY_UID) or ""),
                                               series, instance))
    return match.to_json()


def _search(request: Request, services: Services, origin: Origin, level: Level,
            path: dict[str, str]) -> Response:
    """Run one search; 200 with a JSON array, empty when nothing matches.

    PS3.18 8.3.4.4 formerly asked for 204 on zero matches; CP-2473 restores 200 with an
    empty payload (RFC 9110 15.3.5 forbids content with 204), which every client reads.
    """
    require_json(request)
    qido = qido_query(level, request.query_params.multi_items(), path)
    service = service_url(request)
    archive = services.archive
    matches = [_match_json(ds, level, service) for ds in archive.find(qido.query, origin)]
    response = Response(json.dumps(matches, separators=(",", ":")), media_type=DICOM_JSON)
    warnings = list(qido.warnings)
    requested = qido.query.limit
    if len(matches) >= archive.find_limit and (requested is None or requested > len(matches)):
        # PS3.18 8.3.4.4: the server capped the answer; the client may page with offset.
        warnings.append("There are additional results that can be requested")
    for text in warnings:
        response.headers.append("Warning", warning_header(request, text))
    return response


@router.get("/studies")
def search_for_studies(request: Request, services: ServicesDep,
                       origin: OriginDep) -> Response:
    """``GET /studies``: SearchForStudies (PS3.18 10.6.1, study level)."""
    return _search(request, services, origin, Level.STUDY, {})


@router.get("/series")
def search_for_series(request: Request, services: ServicesDep, origin: OriginDep) -> Response:
    """``GET /series``: SearchForSeries in every study."""
    return _search(request, services, origin, Level.SERIES, {})


@router.get("/studies/{study}/series")
def search_for_study_series(study: str, request: Request, services: ServicesDep,
                            origin: OriginDep) -> Response:
    """``GET /studies/{study}/series``: SearchForSeries in one study."""
    path = {"StudyInstanceUID": check_uid(study, "Study Instance UID")}
    return _search(request, services, origin, Level.SERIES, path)


@router.get("/instances")
def search_for_instances(request: Request, services: ServicesDep,
                         origin: OriginDep) -> Response:
    """``GET /instances``: SearchForInstances in every study."""
    return _search(request, services, origin, Level.IMAGE, {})


@router.get("/studies/{study}/instances")
def search_for_study_instances(study: str, request: Request, services: ServicesDep,
                               origin: OriginDep) -> Response:
    """``GET /studies/{study}/instances``: SearchForInstances in one study."""
    path = {"StudyInstanceUID": check_uid(study, "Study Instance UID")}
    return _search(request, services, origin, Level.IMAGE, path)


@router.get("/studies/{study}/series/{series}/instances")
def search_for_series_instances(study: str, series: str, request: Request,
                                services: ServicesDep, origin: OriginDep) -> Response:
    """``GET /studies/{study}/series/{series}/instances``: SearchForInstances in a series."""
    path = {"StudyInstanceUID": check_uid(study, "Study Instance UID"),
            "SeriesInstanceUID": check_uid(series, "Series Instance UID")}
    return _search(request, services, origin, Level.IMAGE, path)
