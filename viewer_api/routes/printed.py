"""``/api/studies/{uid}/printed``: a technologist marks an exam as printed on film."""

from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter
from pydantic import BaseModel, Field

from ris.savings.printed import MAX_SHEETS, PrintedMark
from viewer_api.auth import Permission, require
from viewer_api.deps import OriginDep, ServicesDep

router = APIRouter(prefix="/api/studies", tags=["savings"])


class PrintedIn(BaseModel):
    sheets: int = Field(ge=1, le=MAX_SHEETS, description="film sheets printed")
    sheet_size: str = Field("", max_length=16,
                            description='sheet size in cm, e.g. "35x43"; default: the cost '
                            "model's default size")
    note: str = Field("", max_length=255)


class PrintedOut(BaseModel):
    study_uid: str
    sheets: int
    sheet_size: str
    username: str
    at: datetime
    note: str

    @classmethod
    def of(cls, mark: PrintedMark) -> PrintedOut:
        return cls(**vars(mark))


@router.post("/{study_uid}/printed", status_code=201,
             dependencies=[require(Permission.RIS_WRITE)])
def mark_printed(study_uid: str, body: PrintedIn, services: ServicesDep,
                 origin: OriginDep) -> PrintedOut:
    """Record that the study was printed (it then counts as printed, not avoided)."""
    return PrintedOut.of(services.savings.printed.mark(
        study_uid, body.sheets, origin, sheet_size=body.sheet_size, note=body.note))


@router.get("/{study_uid}/printed", dependencies=[require(Permission.RIS_READ)])
def list_printed(study_uid: str, services: ServicesDep) -> list[PrintedOut]:
    return [PrintedOut.of(m) for m in services.savings.printed.marks(study_uid)]
