"""The FastAPI application factory."""

from __future__ import annotations

from fastapi import FastAPI

from ris.services import Services
from viewer_api import problems
from viewer_api.routes import aes, health


def create_app(services: Services) -> FastAPI:
    app = FastAPI(title="Filmless PACS", version="0.1.0")
    app.state.services = services
    problems.install(app)
    app.include_router(health.router)
    app.include_router(aes.router)
    return app
