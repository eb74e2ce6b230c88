"""The FastAPI application factory.

Every route passes :func:`viewer_api.auth.enforce_policy` first: the caller is
authenticated and the route's declared permission checked (default-deny, docs/security.md).
"""

from __future__ import annotations

from fastapi import Depends, FastAPI
from starlette.middleware.cors import CORSMiddleware

from ris.services import Services
from viewer_api import dicomweb, problems
from viewer_api.auth import PUBLIC, enforce_policy
from viewer_api.routes import aes, audit, auth, health, users


def create_app(services: Services) -> FastAPI:
    app = FastAPI(title="Filmless PACS", version="0.1.0",
                  dependencies=[Depends(enforce_policy)])
    app.state.services = services
    problems.install(app)
    # DICOMweb viewers such as OHIF are served from another origin (SPEC.md "HTTP").
    app.add_middleware(CORSMiddleware, allow_origins=["*"],
                       allow_methods=["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"],
                       allow_headers=["*"],
                       expose_headers=["Warning", "Content-Location", "WWW-Authenticate"])
    app.include_router(health.router, dependencies=[PUBLIC])
    app.include_router(auth.router)
    app.include_router(users.router)
    app.include_router(audit.router)
    app.include_router(aes.router)
    app.include_router(dicomweb.router)
    return app
