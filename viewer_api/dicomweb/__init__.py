"""DICOMweb (PS3.18) under ``/dicomweb``: QIDO-RS search, WADO-RS
retrieve (instances, metadata, frames, bulk data), STOW-RS store.

Each service is one router module over the archive service; the routers are joined here
so the app factory includes one :data:`router`. Searching and retrieving need
``images:read``, storing ``images:write`` (docs/security.md).
"""

from fastapi import APIRouter

from viewer_api.auth import Permission, require
from viewer_api.dicomweb import bulkdata, frames, qido, rendered, stow, wado

_READ, _WRITE = [require(Permission.IMAGES_READ)], [require(Permission.IMAGES_WRITE)]
router = APIRouter()
router.include_router(qido.router, dependencies=_READ)
router.include_router(wado.router, dependencies=_READ)
router.include_router(frames.router, dependencies=_READ)
router.include_router(bulkdata.router, dependencies=_READ)
router.include_router(rendered.router, dependencies=_READ)
router.include_router(stow.router, dependencies=_WRITE)

__all__ = ["router"]
