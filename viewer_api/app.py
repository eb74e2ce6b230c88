"""The FastAPI application factory."""

from __future__ import annotations

from fastapi import FastAPI
from starlette.middleware.cors import CORSMiddleware

from ris.services import Services
from storage.cache import CacheSettings, DiskCache
from viewer_api import dicomweb, problems, wado_uri
from viewer_api.rendering import Renderer
from viewer_api.routes import aes, health


def create_app(services: Services, *, render_cache: CacheSettings | None = None) -> FastAPI:
    """The HTTP application over ``services``.

    ``render_cache`` places the disk cache of rendered previews and thumbnails
    (``Settings.render_cache()``); without it every preview is rendered afresh.
    """
    app = FastAPI(title="Filmless PACS", version="0.1.0")
    app.state.services = services
    app.state.renderer = Renderer(services.archive,
                                  DiskCache(render_cache) if render_cache else None)
    problems.install(app)
    # DICOMweb viewers such as OHIF are served from another origin (SPEC.md "HTTP").
    app.add_middleware(CORSMiddleware, allow_origins=["*"],
                       allow_methods=["GET", "POST", "OPTIONS"], allow_headers=["*"],
                       expose_headers=["Warning", "Content-Location"])
    app.include_router(health.router)
    app.include_router(aes.router)
    app.include_router(dicomweb.router)
    app.include_router(wado_uri.router)
    return app
