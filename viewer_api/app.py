"""The FastAPI application factory."""

from __future__ import annotations

from fastapi import FastAPI
from starlette.middleware.cors import CORSMiddleware

from ris.services import Services
from viewer_api import dicomweb, problems
from viewer_api.metrics import HttpMetrics
from viewer_api.routes import aes, health, metrics, printed, savings


def create_app(services: Services) -> FastAPI:
    app = FastAPI(title="Filmless PACS", version="0.1.0")
    app.state.services = services
    problems.install(app)
    # DICOMweb viewers such as OHIF are served from another origin (SPEC.md "HTTP").
    app.add_middleware(CORSMiddleware, allow_origins=["*"],
                       allow_methods=["GET", "POST", "OPTIONS"], allow_headers=["*"],
                       expose_headers=["Warning", "Content-Location"])
    app.include_router(health.router)
    app.include_router(aes.router)
    app.include_router(dicomweb.router)
    app.include_router(savings.router)
    app.include_router(printed.router)
    app.include_router(metrics.router)
    # Outermost, so the latency includes every other middleware and error handler.
    app.add_middleware(HttpMetrics)
    return app
