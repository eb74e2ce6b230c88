"""DICOMweb (PS3.18) under ``/dicomweb``: QIDO-RS search, WADO-RS retrieve, STOW-RS store.

Each service is one router module over the archive service; the routers are joined here
so the app factory includes one :data:`router`. Searching and retrieving need
``images:read``, storing ``images:write`` (docs/security.md).
"""

from fastapi import APIRouter

from viewer_api.auth import Permission, require
from viewer_api.dicomweb import qido, rendered, stow, wado

router = APIRouter()
router.include_router(qido.router, dependencies=[require(Permission.IMAGES_READ)])
router.include_router(wado.router, dependencies=[require(Permission.IMAGES_READ)])
router.include_router(stow.router, dependencies=[require(Permission.IMAGES_WRITE)])
router.include_router(rendered.router, dependencies=[require(Permission.IMAGES_READ)])

__all__ = ["router"]
