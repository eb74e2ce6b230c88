"""``/api/patients``: register, read, update and merge patients."""

from __future__ import annotations

from dataclasses import asdict

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field

from ris.patients import PatientInfo
from viewer_api.auth import Permission, require
from viewer_api.deps import OriginDep, ServicesDep

_READ, _WRITE = [require(Permission.RIS_READ)], [require(Permission.RIS_WRITE)]
router = APIRouter(prefix="/api/patients", tags=["patients"])


class PatientUpdate(BaseModel):
    name: str = Field("", max_length=324, description="DICOM PN: FAMILY^GIVEN^MIDDLE")
    birth_date: str = Field("", max_length=8, description="YYYYMMDD")
    sex: str = Field("", max_length=1, description="M, F or O")
    issuer: str = Field("", max_length=64)
    address: str = Field("", max_length=255)
    phone: str = Field("", max_length=64)


class PatientIn(PatientUpdate):
    patient_id: str = Field(min_length=1, max_length=64)

    def info(self) -> PatientInfo:
        return PatientInfo(**self.model_dump())


class PatientOut(PatientIn):
    merged_into: str = ""


class MergeIn(BaseModel):
    merged_patient_id: str = Field(min_length=1, max_length=64)


def out(info: PatientInfo) -> PatientOut:
    return PatientOut(**asdict(info))


@router.get("", dependencies=_READ)
def search_patients(services: ServicesDep, origin: OriginDep, name: str = "",
                    limit: int = Query(100, ge=1, le=1000),
                    offset: int = Query(0, ge=0)) -> list[PatientOut]:
    return [out(p) for p in services.patients.search(origin, name=name, limit=limit,
                                                     offset=offset)]


@router.post("", status_code=201, dependencies=_WRITE)
def register_patient(body: PatientIn, services: ServicesDep, origin: OriginDep) -> PatientOut:
    return out(services.patients.register(body.info(), origin))


@router.get("/{patient_id}", dependencies=_READ)
def get_patient(patient_id: str, services: ServicesDep, origin: OriginDep) -> PatientOut:
    return out(services.patients.get(patient_id, origin))


@router.put("/{patient_id}", dependencies=_WRITE)
def update_patient(patient_id: str, body: PatientUpdate, services: ServicesDep,
                   origin: OriginDep) -> PatientOut:
    """Update demographics; the archive's studies of the patient are corrected too."""
    services.patients.get(patient_id, origin)  # 404 for an unknown patient
    info = PatientInfo(patient_id=patient_id, **body.model_dump())
    return out(services.patients.register(info, origin))


@router.post("/{patient_id}/merge", dependencies=_WRITE)
def merge_patient(patient_id: str, body: MergeIn, services: ServicesDep,
                  origin: OriginDep) -> PatientOut:
    """Merge ``merged_patient_id`` into this patient (as HL7 ADT^A40)."""
    return out(services.patients.merge(patient_id, body.merged_patient_id, origin))
