"""The FastAPI application factory.

Every route passes :func:`viewer_api.auth.enforce_policy` first: the caller is
authenticated and the route's declared permission checked (default-deny, docs/security.md).
"""

from __future__ import annotations

from fastapi import Depends, FastAPI
from starlette.middleware.cors import CORSMiddleware

from ris.services import Services
from storage.cache import CacheSettings, DiskCache
from viewer_api import dicomweb, problems, wado_uri
from viewer_api.auth import PUBLIC, Permission, enforce_policy, require
from viewer_api.metrics import HttpMetrics
from viewer_api.rendering import Renderer
from viewer_api.routes import (
    aes,
    audit,
    auth,
    health,
    metrics,
    orders,
    patients,
    printed,
    reports,
    savings,
    studies,
    users,
    worklist,
)


def create_app(services: Services, *, render_cache: CacheSettings | None = None) -> FastAPI:
    """The HTTP application over ``services``.

    ``render_cache`` places the disk cache of rendered previews and thumbnails
    (``Settings.render_cache()``); without it every preview is rendered afresh.
    """
    app = FastAPI(title="Filmless PACS", version="0.1.0",
                  dependencies=[Depends(enforce_policy)])
    app.state.services = services
    app.state.renderer = Renderer(services.archive,
                                  DiskCache(render_cache) if render_cache else None)
    problems.install(app)
    # DICOMweb viewers such as OHIF are served from another origin (SPEC.md "HTTP").
    app.add_middleware(CORSMiddleware, allow_origins=["*"],
                       allow_methods=["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"],
                       allow_headers=["*"],
                       expose_headers=["Warning", "Content-Location", "WWW-Authenticate"])
    # DICOMweb first: a request is matched against the routes in order, and a viewer
    # opening one study sends hundreds of DICOMweb requests (frames, thumbnails,
    # metadata) for each call to the RIS routes. No path overlaps: /dicomweb/...
    app.include_router(dicomweb.router)
    app.include_router(health.router, dependencies=[PUBLIC])
    app.include_router(auth.router)
    app.include_router(users.router)
    app.include_router(audit.router)
    app.include_router(aes.router)
    for resource in (patients, orders, worklist, studies):
        app.include_router(resource.router)
    app.include_router(reports.router)
    app.include_router(wado_uri.router, dependencies=[require(Permission.IMAGES_READ)])
    app.include_router(savings.router, dependencies=[require(Permission.SAVINGS_READ)])
    app.include_router(printed.router)
    app.include_router(metrics.router, dependencies=[require(Permission.METRICS_READ)])
    # Outermost, so the latency includes every other middleware and error handler.
    app.add_middleware(HttpMetrics)
    return app
