"""``/api/reports/savings`` and ``/api/reports/operations`` (REST), and the printable
savings dashboard at ``/reports/savings`` (Vietnamese or English)."""

from __future__ import annotations

from datetime import date
from typing import Annotated

from fastapi import APIRouter, Query, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, JSONResponse

from ris.savings import Format, Group, render
from ris.savings.render import MEDIA_TYPES
from ris.savings.service import default_period as period
from ris.savings.strings import pick_language
from viewer_api.deps import ServicesDep

router = APIRouter(tags=["reports"])

FromQ = Annotated[date | None, Query(alias="from", description="first exam day (YYYY-MM-DD); "
                                     "default: the first day of the month 11 months ago")]
ToQ = Annotated[date | None, Query(alias="to",
                                   description="last exam day, inclusive; default: today")]
LangQ = Annotated[str | None, Query(pattern="^(vi|en)$",
                                    description="vi or en; default from Accept-Language")]


@router.get("/api/reports/savings", response_model=None)
async def savings_report(request: Request, services: ServicesDep, start: FromQ = None,
                         end: ToQ = None,
                         group: Group = Group.MONTH, format: Format = Format.JSON,
                         lang: LangQ = None) -> Response:
    """Studies and images archived, films avoided, deliveries, costs avoided, storage
    cost and net savings, per group; ``totals`` is the sum of the groups."""
    first, last = period(start, end)
    words = pick_language(lang, request.headers.get("accept-language"))
    report = await run_in_threadpool(services.savings.report, first, last, group)
    body = await run_in_threadpool(render, report, format, lang=words)
    headers = {}
    if format in (Format.CSV, Format.PDF, Format.PNG):
        headers["Content-Disposition"] = (
            f'attachment; filename="savings-{first}-{last}.{format.value}"')
    return Response(body, media_type=MEDIA_TYPES[format], headers=headers)


@router.get("/api/reports/operations")
def operations_report(services: ServicesDep, start: FromQ = None,
                      end: ToQ = None) -> JSONResponse:
    """Studies per day per modality, turnaround times, storage used and the days until
    it is full, ingest errors per day."""
    first, last = period(start, end)
    return JSONResponse(services.savings.operations_report(first, last).to_dict())


@router.get("/reports/savings", response_class=HTMLResponse, include_in_schema=False)
def savings_dashboard(request: Request, services: ServicesDep, start: FromQ = None,
                      end: ToQ = None, group: Group = Group.MONTH,
                      lang: LangQ = None) -> HTMLResponse:
    """The printable dashboard: savings figures, charts and operations."""
    first, last = period(start, end)
    words = pick_language(lang, request.headers.get("accept-language"))
    report = services.savings.report(first, last, group)
    operations = services.savings.operations_report(first, last)
    html = render(report, Format.HTML, lang=words, operations=operations)
    return HTMLResponse(html, headers={"Content-Language": words})
