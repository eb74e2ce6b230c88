"""``/api/studies``: archived studies with their workflow status; unmatched studies and
linking them to an order by hand (reconciliation)."""

from __future__ import annotations

from dataclasses import asdict

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field

from storage.errors import NotFound
from viewer_api.auth import Permission, require
from viewer_api.deps import OriginDep, ServicesDep
from viewer_api.routes.orders import OrderOut, order_out

_READ, _WRITE = [require(Permission.RIS_READ)], [require(Permission.RIS_WRITE)]
router = APIRouter(prefix="/api/studies", tags=["studies"])


class StudyOut(BaseModel):
    study_uid: str
    accession_number: str
    patient_id: str
    patient_name: str
    study_date: str
    description: str
    modalities: list[str]
    num_instances: int
    order_status: str = Field(description="status of the linked order; empty if none")
    order_accession: str


class LinkIn(BaseModel):
    accession_number: str = Field(min_length=1, max_length=16)


@router.get("", dependencies=_READ)
def list_studies(services: ServicesDep, origin: OriginDep, unmatched: bool = False,
                 limit: int = Query(100, ge=1, le=1000),
                 offset: int = Query(0, ge=0)) -> list[StudyOut]:
    """Studies, newest first; ``unmatched=true`` lists those no order is linked to."""
    return [StudyOut(**asdict(s)) for s in services.reconciler.studies(
        origin, unmatched=unmatched, limit=limit, offset=offset)]


@router.get("/{study_uid}", dependencies=_READ)
def get_study(study_uid: str, services: ServicesDep, origin: OriginDep) -> StudyOut:
    found = services.reconciler.studies(origin, study_uid=study_uid, limit=1)
    if not found:
        raise NotFound("study is not in the archive")
    return StudyOut(**asdict(found[0]))


@router.post("/{study_uid}/link", dependencies=_WRITE)
def link_study(study_uid: str, body: LinkIn, services: ServicesDep,
               origin: OriginDep) -> OrderOut:
    """Link the study to an order: the order advances, and the study takes the order's
    patient demographics and accession number (index, headers, retrieved objects)."""
    return order_out(services.reconciler.link(study_uid, body.accession_number, origin))
