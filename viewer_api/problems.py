"""RFC 9457 problem responses, with statuses read from :data:`storage.errors.ERRORS`."""

from __future__ import annotations

import logging
from http import HTTPStatus

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from storage.errors import PacsError, status_of

log = logging.getLogger(__name__)
PROBLEM = "application/problem+json"
CHALLENGE = 'Basic realm="Filmless PACS", Bearer realm="Filmless PACS"'
"""The ``WWW-Authenticate`` challenge of every 401 (RFC 9110 11.6.1, RFC 7617, RFC 6750)."""


def problem(status: int, detail: str, instance: str = "", type_: str = "about:blank") -> JSONResponse:
    body = {"type": type_, "title": HTTPStatus(status).phrase, "status": status, "detail": detail}
    if instance:
        body["instance"] = instance
    return JSONResponse(body, status_code=status, media_type=PROBLEM)


def install(app: FastAPI) -> None:
    @app.exception_handler(PacsError)
    async def _pacs_error(request: Request, exc: PacsError) -> JSONResponse:
        status = status_of(exc).http
        log.warning("%s %s -> %d %s", request.method, request.url.path, status, exc.code)
        response = problem(status, str(exc), request.url.path, f"urn:filmless-pacs:{exc.code}")
        if status == 401:
            response.headers["WWW-Authenticate"] = CHALLENGE
        retry_after = getattr(exc, "retry_after", None)
        if retry_after is not None:
            response.headers["Retry-After"] = str(retry_after)
        return response

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        response = problem(exc.status_code, str(exc.detail), request.url.path)
        for name, value in (exc.headers or {}).items():
            response.headers[name] = value
        return response

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        detail = "; ".join(
            f"{'.'.join(str(p) for p in e.get('loc', ()))}: {e.get('msg')}" for e in exc.errors())
        return problem(422, detail, request.url.path)
