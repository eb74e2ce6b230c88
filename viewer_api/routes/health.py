"""``/api/health``: is the index reachable, is object storage writable, which versions."""

from __future__ import annotations

from importlib.metadata import version
from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from storage.errors import PacsError
from viewer_api.deps import ServicesDep

router = APIRouter(tags=["health"])


@router.get("/api/health")
def health(services: ServicesDep) -> JSONResponse:
    checks: dict[str, Any] = {}
    healthy = True
    try:
        checks["index"] = {"status": "ok", "version": services.db.check(),
                           "dialect": services.db.dialect}
    except PacsError as exc:
        healthy = False
        checks["index"] = {"status": "unavailable", "detail": str(exc)}
    try:
        services.objects.check()
        checks["storage"] = {"status": "ok", "url": _redact(services.objects.url)}
    except PacsError as exc:
        healthy = False
        checks["storage"] = {"status": "unavailable", "detail": str(exc)}
    body = {
        "status": "ok" if healthy else "unavailable",
        "checks": checks,
        "versions": {name: version(dist) for name, dist in [
            ("filmless-pacs", "filmless-pacs"), ("pydicom", "pydicom"),
            ("pynetdicom", "pynetdicom"), ("sqlalchemy", "SQLAlchemy")]},
    }
    return JSONResponse(body, status_code=200 if healthy else 503)


def _redact(url: str) -> str:
    return url.split("@", 1)[-1] if "@" in url else url
