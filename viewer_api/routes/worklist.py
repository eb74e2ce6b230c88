"""``/api/worklist``: scheduled steps (the modality worklist, as JSON) and the reading
worklist of studies waiting for a report, with turnaround times."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query
from pydantic import BaseModel

from ris.workflow import OrderStatus
from ris.worklist import SPS, ReadingItem, WorklistQuery
from viewer_api.auth import Permission, require
from viewer_api.deps import OriginDep, ServicesDep

_READ, _WRITE = [require(Permission.RIS_READ)], [require(Permission.RIS_WRITE)]
router = APIRouter(prefix="/api/worklist", tags=["worklist"])

_KEYS = ["AccessionNumber", "PatientID", "PatientName", "PatientBirthDate", "PatientSex",
         "StudyInstanceUID", "RequestedProcedureID", "RequestedProcedureDescription",
         "RequestedProcedurePriority", "ReferringPhysicianName", "RequestingService", SPS]


class ScheduledItem(BaseModel):
    accession_number: str
    patient_id: str
    patient_name: str
    study_uid: str
    procedure_description: str
    priority: str
    sps_id: str
    modality: str
    station_ae: str
    start_date: str
    start_time: str
    status: str


def _text(ds: Any, keyword: str) -> str:
    return str(ds.get(keyword, "") or "")


@router.get("", dependencies=_READ)
def scheduled_steps(services: ServicesDep, origin: OriginDep, station_ae: str = "",
                    modality: str = "", date: str = Query("", description="YYYYMMDD or range"),
                    patient_id: str = "", accession_number: str = "",
                    patient_name: str = "") -> list[ScheduledItem]:
    """Steps still to perform, matched as a Modality Worklist C-FIND would be."""
    filters = {"ScheduledStationAETitle": station_ae, "Modality": modality,
               "ScheduledProcedureStepStartDate": date, "PatientID": patient_id,
               "AccessionNumber": accession_number, "PatientName": patient_name}
    query = WorklistQuery(filters={k: v for k, v in filters.items() if v}, keys=_KEYS)
    items = []
    for ds in services.worklist.find(query, origin):
        step = ds[SPS][0]
        items.append(ScheduledItem(
            accession_number=_text(ds, "AccessionNumber"), patient_id=_text(ds, "PatientID"),
            patient_name=_text(ds, "PatientName"), study_uid=_text(ds, "StudyInstanceUID"),
            procedure_description=_text(ds, "RequestedProcedureDescription"),
            priority=_text(ds, "RequestedProcedurePriority"),
            sps_id=_text(step, "ScheduledProcedureStepID"), modality=_text(step, "Modality"),
            station_ae=_text(step, "ScheduledStationAETitle"),
            start_date=_text(step, "ScheduledProcedureStepStartDate"),
            start_time=_text(step, "ScheduledProcedureStepStartTime"),
            status=_text(step, "ScheduledProcedureStepStatus").lower()))
    return items


@router.get("/reading", dependencies=_READ)
def reading_worklist(services: ServicesDep, origin: OriginDep,
                     status: Annotated[list[OrderStatus], Query()] = [],  # noqa: B006
                     limit: int = Query(200, ge=1, le=1000)) -> list[ReadingItem]:
    """Studies waiting for a report (completed, preliminary), most urgent and oldest
    first; ``status`` chooses others (e.g. ``final`` for turnaround review)."""
    return services.worklist.reading(origin, statuses=status or None, limit=limit)
