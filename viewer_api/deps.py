"""Typed dependencies: the process's services, and the caller's origin."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from ris.services import Services
from storage.origin import Origin
from viewer_api.rendering import Renderer


def get_services(request: Request) -> Services:
    return request.app.state.services  # type: ignore[no-any-return]


def get_origin(request: Request) -> Origin:
    client = request.client
    address = f"{client.host}:{client.port}" if client else ""
    return Origin(channel="http", address=address)


ServicesDep = Annotated[Services, Depends(get_services)]
OriginDep = Annotated[Origin, Depends(get_origin)]


def get_renderer(request: Request) -> Renderer:
    return request.app.state.renderer  # type: ignore[no-any-return]


RendererDep = Annotated[Renderer, Depends(get_renderer)]
