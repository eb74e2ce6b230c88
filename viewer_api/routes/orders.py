"""``/api/orders``: imaging orders, their scheduled steps and their workflow status."""

from __future__ import annotations

from dataclasses import asdict
from datetime import datetime

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field

from ris.orders import OrderRequest, OrderView, StepRequest
from ris.workflow import OrderStatus
from viewer_api.auth import Permission, require
from viewer_api.deps import OriginDep, ServicesDep
from viewer_api.routes.patients import PatientIn, PatientOut

_READ, _WRITE = [require(Permission.RIS_READ)], [require(Permission.RIS_WRITE)]
router = APIRouter(prefix="/api/orders", tags=["orders"])


class StepIn(BaseModel):
    modality: str = Field(min_length=1, max_length=16)
    station_ae: str = Field("", max_length=16)
    station_name: str = Field("", max_length=16)
    start_date: str = Field("", max_length=8, description="YYYYMMDD")
    start_time: str = Field("", max_length=16, description="HHMMSS")
    description: str = Field("", max_length=64)
    performing_physician: str = Field("", max_length=324)


class StepOut(StepIn):
    sps_id: str


class OrderIn(BaseModel):
    patient: PatientIn
    steps: list[StepIn] = Field(min_length=1)
    accession_number: str = Field("", max_length=16,
                                  description="empty: the archive issues one")
    placer_order_number: str = Field("", max_length=64)
    procedure_code: str = Field("", max_length=64)
    procedure_description: str = Field("", max_length=64)
    priority: str = Field("ROUTINE", description="STAT, HIGH, ROUTINE, MEDIUM or LOW")
    referring_physician_name: str = Field("", max_length=324)
    department: str = Field("", max_length=64)
    reason: str = Field("", max_length=255)

    def request(self) -> OrderRequest:
        data = self.model_dump(exclude={"patient", "steps"})
        return OrderRequest(patient=self.patient.info(),
                            steps=[StepRequest(**s.model_dump()) for s in self.steps], **data)


class OrderOut(BaseModel):
    accession_number: str
    placer_order_number: str
    patient: PatientOut
    requested_procedure_id: str
    procedure_code: str
    procedure_description: str
    priority: str
    referring_physician_name: str
    department: str
    reason: str
    study_uid: str = Field(description="issued at order time, sent in the worklist")
    linked_study_uid: str = Field(description="the archived study matched to the order")
    status: OrderStatus
    times: dict[str, datetime | None]
    steps: list[StepOut]


class StatusIn(BaseModel):
    status: OrderStatus


def order_out(order: OrderView) -> OrderOut:
    return OrderOut.model_validate(asdict(order))


@router.get("", dependencies=_READ)
def search_orders(services: ServicesDep, origin: OriginDep,
                  status: OrderStatus | None = None, patient_id: str = "",
                  limit: int = Query(100, ge=1, le=1000),
                  offset: int = Query(0, ge=0)) -> list[OrderOut]:
    return [order_out(o) for o in services.orders.search(
        origin, status=status, patient_id=patient_id, limit=limit, offset=offset)]


@router.post("", status_code=201, dependencies=_WRITE)
def create_order(body: OrderIn, services: ServicesDep, origin: OriginDep) -> OrderOut:
    return order_out(services.orders.create(body.request(), origin))


@router.get("/{accession}", dependencies=_READ)
def get_order(accession: str, services: ServicesDep, origin: OriginDep) -> OrderOut:
    return order_out(services.orders.get(accession, origin))


@router.put("/{accession}", dependencies=_WRITE)
def change_order(accession: str, body: OrderIn, services: ServicesDep,
                 origin: OriginDep) -> OrderOut:
    """Replace an order not yet performed (409 once the exam has started)."""
    return order_out(services.orders.change(accession, body.request(), origin))


@router.post("/{accession}/status", dependencies=_WRITE)
def advance_order(accession: str, body: StatusIn, services: ServicesDep,
                  origin: OriginDep) -> OrderOut:
    """Move the order through its status machine; an invalid move is 409 and changes
    nothing."""
    return order_out(services.orders.advance(accession, body.status, origin))
