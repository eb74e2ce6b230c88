"""Typed dependencies: the process's services, and the caller's origin.

They only read ``request`` and ``app.state``, so they are ``async def``: FastAPI calls a
plain ``def`` dependency in its threadpool, one thread hop (two context switches) per
dependency per request, which on a cached preview cost more than the work itself.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from ris.services import Services
from storage.origin import Origin
from viewer_api.rendering import Renderer


async def get_services(request: Request) -> Services:
    return request.app.state.services  # type: ignore[no-any-return]


async def get_origin(request: Request) -> Origin:
    """The caller: its address, and the user and role :mod:`viewer_api.auth` authenticated."""
    client = request.client
    address = f"{client.host}:{client.port}" if client else ""
    principal = getattr(request.state, "principal", None)
    if principal is None:
        return Origin(channel="http", address=address)
    return Origin(channel="http", address=address, username=principal.username,
                  role=principal.role)


ServicesDep = Annotated[Services, Depends(get_services)]
OriginDep = Annotated[Origin, Depends(get_origin)]


async def get_renderer(request: Request) -> Renderer:
    return request.app.state.renderer  # type: ignore[no-any-return]


RendererDep = Annotated[Renderer, Depends(get_renderer)]
