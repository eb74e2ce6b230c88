"""DICOMweb (PS3.18) under ``/dicomweb``: QIDO-RS search, WADO-RS
retrieve (instances, metadata, frames, bulk data), STOW-RS store.

Each service is one router module over the archive service; the routers are joined here
so the app factory includes one :data:`router`.
"""

from fastapi import APIRouter

from viewer_api.dicomweb import bulkdata, frames, qido, stow, wado

router = APIRouter()
router.include_router(qido.router)
router.include_router(wado.router)
router.include_router(frames.router)
router.include_router(bulkdata.router)
router.include_router(stow.router)

__all__ = ["router"]
