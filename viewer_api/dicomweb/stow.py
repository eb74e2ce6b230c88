"""STOW-RS: store instances sent as ``multipart/related`` (PS3.18 10.5).

The route is ``async def`` only to read the request stream: parts are spooled one by one
to temporary files while the body arrives (never the whole body in memory), then each
file goes through :meth:`Archive.store` in the threadpool, the same ingest path and
rules as C-STORE. The answer lists stored instances in ReferencedSOPSequence and
failures in FailedSOPSequence with the DIMSE status of the error as FailureReason
(PS3.18 10.5.3, codes from ``storage.errors.ERRORS``).
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
from dataclasses import dataclass
from typing import IO

from fastapi import APIRouter, HTTPException, Request, Response
from pydicom import dcmread
from pydicom.dataset import Dataset
from starlette.concurrency import run_in_threadpool

from ris.services import Services
from storage.errors import PacsError, UnreadableDataset, status_of
from storage.origin import Origin
from viewer_api.deps import OriginDep, ServicesDep
from viewer_api.dicomweb.multipart import (
    CHUNK,
    MultipartError,
    PartStart,
    RelatedReader,
    parse_media_type,
)
from viewer_api.dicomweb.params import check_uid, resource_url
from viewer_api.dicomweb.qido import DICOM_JSON, service_url

log = logging.getLogger(__name__)
router = APIRouter(prefix="/dicomweb", tags=["dicomweb"])

MAX_STOW_BYTES = 2 << 30
"""The largest request body accepted (2 GiB); larger ones get 413 and nothing is stored."""

PROCESSING_FAILURE = 0x0110
"""FailureReason for an unexpected error (PS3.7 C.4.1, as dicomweb-client reports it)."""

_UIDS = ("SOPClassUID", "SOPInstanceUID", "StudyInstanceUID", "SeriesInstanceUID")


@dataclass
class _Part:
    path: str
    content_type: str
    file: IO[bytes]


def _boundary(request: Request) -> str:
    """The boundary of a ``multipart/related; type="application/dicom"`` body (PS3.18 10.5.1.1).

    Raises 415 for any other media type (including the metadata + bulk data forms,
    which are not supported), 400 when the boundary is missing.
    """
    media, params = parse_media_type(request.headers.get("content-type", ""))
    if media != "multipart/related" or params.get("type", "application/dicom") not in (
            "application/dicom", ""):
        raise HTTPException(415, 'STOW-RS takes multipart/related; type="application/dicom"')
    if not params.get("boundary"):
        raise HTTPException(400, "multipart/related without a boundary parameter")
    return params["boundary"]


async def _spool(request: Request, boundary: str) -> list[_Part]:
    """Split the body into one temporary file per part, writing as the bytes arrive."""
    parts: list[_Part] = []
    pending = bytearray()
    received = 0

    async def flush(close: bool = False) -> None:
        if parts and pending:
            await run_in_threadpool(parts[-1].file.write, bytes(pending))
        pending.clear()
        if parts and close:
            parts[-1].file.close()  # one open file at a time, however many parts

    try:
        reader = RelatedReader(boundary)
        async for chunk in request.stream():
            received += len(chunk)
            if received > MAX_STOW_BYTES:
                raise HTTPException(413, f"request body exceeds {MAX_STOW_BYTES} bytes")
            for event in reader.feed(chunk):
                if isinstance(event, PartStart):
                    await flush(close=True)
                    fh = tempfile.NamedTemporaryFile(prefix="stow-", suffix=".dcm",
                                                     delete=False)
                    parts.append(_Part(fh.name, event.headers.get("content-type", ""), fh))
                else:
                    pending += event.data
                    if len(pending) >= CHUNK:
                        await flush()
        await flush(close=True)
        reader.close()
    except MultipartError as exc:
        _remove(parts)
        raise HTTPException(400, f"malformed multipart body: {exc}") from exc
    except BaseException:
        _remove(parts)
        raise
    return parts


def _remove(parts: list[_Part]) -> None:
    for part in parts:
        part.file.close()
        try:
            os.unlink(part.path)
        except OSError:
            log.warning("could not remove spooled STOW part %s", part.path)


def _peek(path: str) -> dict[str, str]:
    """The identifying UIDs of a spooled part, for the response items; ``{}`` if unreadable.

    Only these four elements are parsed (no pixel data); the archive parses and
    validates the object itself when it stores it.
    """
    try:
        ds = dcmread(path, stop_before_pixels=True, specific_tags=list(_UIDS))
        return {k: str(ds.get(k, "") or "").strip() for k in _UIDS}
    except Exception:  # anything unreadable is reported by Archive.store as 0xC000
        return {}


def _store(services: Services, part: _Part, study: str, origin: Origin,
           service: str) -> tuple[bool, Dataset]:
    """Store one part; ``(stored, response item)``. Runs in the threadpool."""
    item = Dataset()
    try:
        media, _ = parse_media_type(part.content_type or "application/dicom")
        if media != "application/dicom":
            raise UnreadableDataset("part is not application/dicom")
        # PS3.18 10.5.1.1: every instance must belong to the study named in the URL.
        result = services.archive.store(part.path, origin, study_uid=study or None)
    except Exception as exc:
        # A failed item names the instance when its header can be read at all.
        uids = _peek(part.path)
        item.ReferencedSOPClassUID = uids.get("SOPClassUID", "")
        item.ReferencedSOPInstanceUID = uids.get("SOPInstanceUID", "")
        if not isinstance(exc, PacsError):
            log.exception("STOW-RS: unexpected error storing %s", item.ReferencedSOPInstanceUID)
        return False, _failed(item, exc)
    item.ReferencedSOPClassUID = result.sop_class_uid
    item.ReferencedSOPInstanceUID = result.sop_instance_uid
    item.RetrieveURL = resource_url(service, result.study_uid, result.series_uid,
                                    result.sop_instance_uid)
    return True, item


def _failed(item: Dataset, exc: BaseException) -> Dataset:
    reason = status_of(exc).store if isinstance(exc, PacsError) else None
    item.FailureReason = reason if reason is not None else PROCESSING_FAILURE
    code = exc.code if isinstance(exc, PacsError) else type(exc).__name__
    log.warning("STOW-RS refused %s: %s (0x%04X)", item.ReferencedSOPInstanceUID or "-",
                code, item.FailureReason)
    return item


async def _store_instances(request: Request, services: Services, origin: Origin,
                           study: str = "") -> Response:
    boundary = _boundary(request)
    length = request.headers.get("content-length", "")
    if length.isdigit() and int(length) > MAX_STOW_BYTES:
        raise HTTPException(413, f"request body exceeds {MAX_STOW_BYTES} bytes")
    parts = await _spool(request, boundary)
    service = service_url(request)
    stored: list[Dataset] = []
    failed: list[Dataset] = []
    try:
        if not parts:
            raise HTTPException(400, "the multipart body holds no part")
        for part in parts:
            ok, item = await run_in_threadpool(_store, services, part, study, origin, service)
            (stored if ok else failed).append(item)
    finally:
        _remove(parts)
    answer = Dataset()
    studies = {url.rsplit("/series/", 1)[0] for url in (i.RetrieveURL for i in stored)}
    if study or len(studies) == 1:
        answer.RetrieveURL = resource_url(service, study) if study else studies.pop()
    if failed:
        answer.FailedSOPSequence = failed
    if stored:
        answer.ReferencedSOPSequence = stored
    status = 200 if not failed else 202 if stored else 409
    return Response(json.dumps(answer.to_json_dict()), status_code=status,
                    media_type=DICOM_JSON)


@router.post("/studies")
async def store_instances(request: Request, services: ServicesDep,
                          origin: OriginDep) -> Response:
    """``POST /studies``: Store Instances (PS3.18 10.5); 200, 202 partial, 409 none stored."""
    return await _store_instances(request, services, origin)


@router.post("/studies/{study}")
async def store_study_instances(study: str, request: Request, services: ServicesDep,
                                origin: OriginDep) -> Response:
    """``POST /studies/{study}``: as above; instances of another study fail with 0xA900."""
    check_uid(study, "Study Instance UID")
    return await _store_instances(request, services, origin, study)
