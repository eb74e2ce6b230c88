"""``/api/reports``: the radiology report life cycle, verification and PDF export.

Each route is thin: it calls one :class:`ris.reports.ReportService` method and shapes the
answer. The signing user is the request's authenticated user (``Origin.username``); while
HTTP authentication is off, the body's ``signer`` names it (see the service).
"""

from __future__ import annotations

from fastapi import APIRouter, Query, Response
from pydantic import BaseModel, Field

from ris.reports import ReportStatus, ReportView, Verification
from viewer_api.auth import Permission, require
from viewer_api.deps import OriginDep, ServicesDep

_READ, _WRITE = [require(Permission.REPORTS_READ)], [require(Permission.REPORTS_WRITE)]
router = APIRouter(prefix="/api/reports", tags=["reports"])


class ReportIn(BaseModel):
    study_uid: str = Field(min_length=1, max_length=64)
    text: str = ""
    accession_number: str | None = Field(None, max_length=64)


class TextIn(BaseModel):
    text: str


class SignIn(BaseModel):
    signer: str | None = Field(None, max_length=64,
                               description="only while HTTP authentication is off")


class AddendumIn(SignIn):
    text: str = Field(min_length=1)


class SigningKeyOut(BaseModel):
    algorithm: str = "Ed25519"
    key_id: str
    public_key_pem: str


@router.get("/signing-key", dependencies=_READ)
def signing_key(services: ServicesDep) -> SigningKeyOut:
    pem, key_id = services.reports.signing_key()
    return SigningKeyOut(key_id=key_id, public_key_pem=pem)


@router.post("", status_code=201, dependencies=_WRITE)
def create_report(body: ReportIn, services: ServicesDep, origin: OriginDep) -> ReportView:
    return services.reports.create(body.study_uid, origin, text=body.text,
                                                accession_number=body.accession_number)


@router.get("", dependencies=_READ)
def list_reports(services: ServicesDep, origin: OriginDep,
                 study_uid: str | None = Query(None, alias="study"),
                 accession_number: str | None = Query(None, alias="accession"),
                 status: ReportStatus | None = None,
                 limit: int = Query(100, ge=1, le=1000),
                 offset: int = Query(0, ge=0)) -> list[ReportView]:
    return services.reports.list(origin, study_uid=study_uid,
                                 accession_number=accession_number, status=status,
                                 limit=limit, offset=offset)


@router.get("/{report_id:int}", dependencies=_READ)
def get_report(report_id: int, services: ServicesDep, origin: OriginDep) -> ReportView:
    return services.reports.get(report_id, origin)


@router.patch("/{report_id:int}", dependencies=_WRITE)
def edit_report(report_id: int, body: TextIn, services: ServicesDep,
                origin: OriginDep) -> ReportView:
    return services.reports.update_text(report_id, body.text, origin)


@router.post("/{report_id:int}/preliminary", dependencies=_WRITE)
def make_preliminary(report_id: int, services: ServicesDep, origin: OriginDep) -> ReportView:
    return services.reports.make_preliminary(report_id, origin)


@router.post("/{report_id:int}/final", dependencies=_WRITE)
def sign_report(report_id: int, services: ServicesDep, origin: OriginDep,
                body: SignIn | None = None) -> ReportView:
    signer = body.signer if body else None
    return services.reports.finalize(report_id, origin, signer=signer)


@router.post("/{report_id:int}/addenda", status_code=201, dependencies=_WRITE)
def add_addendum(report_id: int, body: AddendumIn, services: ServicesDep,
                 origin: OriginDep) -> ReportView:
    return services.reports.add_addendum(report_id, body.text, origin,
                                                      signer=body.signer)


@router.get("/{report_id:int}/verify", dependencies=_READ)
def verify_report(report_id: int, services: ServicesDep, origin: OriginDep) -> Verification:
    return services.reports.verify(report_id, origin)


@router.get("/{report_id:int}/pdf", response_class=Response,
            responses={200: {"content": {"application/pdf": {}}}}, dependencies=_READ)
def report_pdf(report_id: int, services: ServicesDep, origin: OriginDep) -> Response:
    pdf = services.reports.pdf(report_id, origin)
    return Response(pdf, media_type="application/pdf", headers={
        "Content-Disposition": f'inline; filename="report-{report_id}.pdf"'})
