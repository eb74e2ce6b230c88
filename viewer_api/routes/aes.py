"""``/api/aes``: the known DICOM peers (C-MOVE destinations)."""

from __future__ import annotations

from fastapi import APIRouter, Response
from pydantic import BaseModel, Field

from viewer_api.auth import Permission, require
from viewer_api.deps import ServicesDep

router = APIRouter(prefix="/api/aes", tags=["aes"])
READ, WRITE = [require(Permission.AES_READ)], [require(Permission.AES_WRITE)]


class AEIn(BaseModel):
    ae_title: str = Field(min_length=1, max_length=16)
    host: str = Field(min_length=1, max_length=255)
    port: int = Field(gt=0, lt=65536)
    description: str = ""


class AEOut(AEIn):
    pass


@router.get("", dependencies=READ)
def list_aes(services: ServicesDep) -> list[AEOut]:
    return [AEOut(**vars(ae)) for ae in services.aes.list()]


@router.post("", status_code=201, dependencies=WRITE)
def add_ae(body: AEIn, services: ServicesDep) -> AEOut:
    ae = services.aes.add(body.ae_title, body.host, body.port, body.description)
    return AEOut(**vars(ae))


@router.get("/{ae_title}", dependencies=READ)
def get_ae(ae_title: str, services: ServicesDep) -> AEOut:
    return AEOut(**vars(services.aes.get(ae_title)))


@router.delete("/{ae_title}", status_code=204, dependencies=WRITE)
def remove_ae(ae_title: str, services: ServicesDep) -> Response:
    services.aes.remove(ae_title)
    return Response(status_code=204)
