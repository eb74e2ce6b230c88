"""``/api/reports/savings``, ``/reports/savings`` and ``/api/studies/{uid}/printed`` over
HTTP, on the fixed studies of :mod:`tests.savings.fixtures` (SQLite and PostgreSQL)."""

from __future__ import annotations

import csv
import io
from dataclasses import fields
from decimal import Decimal

import pytest
from fastapi.testclient import TestClient
from PIL import Image
from pypdf import PdfReader

from ris.savings.report import COLUMNS, SavingsRow
from ris.services import Services
from tests.savings.fixtures import END, START, Fixed, expected_groups

NUMBERS = [c for c in COLUMNS if c != "key"]
MONEY = {f.name for f in fields(SavingsRow) if isinstance(f.default, Decimal)}


def _report(client: TestClient, group: str, fmt: str = "json", **extra: str) -> object:
    response = client.get("/api/reports/savings",
                          params={"from": START, "to": END, "group": group, "format": fmt,
                                  **extra})
    assert response.status_code == 200, response.text
    return response


@pytest.mark.parametrize("group", ["modality", "month", "department", "referring"])
def test_fixed_studies_give_known_figures(client: TestClient, fixed: Fixed,
                                          group: str) -> None:
    body = _report(client, group).json()
    assert body["currency"] == "VND"
    assert body["group"] == group
    got = {g["key"]: {k: v for k, v in g.items() if k != "key"} for g in body["groups"]}
    assert got == expected_groups(fixed)[group]
    # Totals are the sum of the groups, column by column.
    for column in NUMBERS:
        assert body["totals"][column] == sum(g[column] for g in body["groups"]), column
    assert body["totals"]["studies"] == 3  # E is outside the period
    assert body["totals"]["films_avoided"] == 5
    assert body["totals"]["costs_avoided"] == 214_000


def test_totals_do_not_depend_on_the_grouping(client: TestClient, fixed: Fixed) -> None:
    """Counts are the same whatever the grouping. Money totals are the sums of the groups
    rounded to the currency unit (so every report adds up, ris.savings.report), so two
    groupings may differ by their groups' rounding: at most one unit per group (net
    savings is rounded twice). The storage cost of the fixed studies has a fractional
    part that varies with the length of their random UIDs."""
    reports = [_report(client, g).json()
               for g in ("modality", "month", "department", "referring")]
    first = reports[0]
    for report in reports[1:]:
        slack = len(first["groups"]) + len(report["groups"])
        for column in NUMBERS:
            ours, theirs = report["totals"][column], first["totals"][column]
            if column in MONEY:
                assert abs(ours - theirs) <= slack, (report["group"], column)
            else:
                assert ours == theirs, (report["group"], column)


def test_csv_and_json_agree(client: TestClient, fixed: Fixed) -> None:
    as_json = _report(client, "modality").json()
    response = _report(client, "modality", "csv")
    assert response.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(response.text)))
    assert [r["key"] for r in rows] == [g["key"] for g in as_json["groups"]] + ["total"]
    for row, group in zip(rows, [*as_json["groups"], as_json["totals"]], strict=True):
        for column in NUMBERS:
            assert float(row[column]) == group[column], column


def test_pdf_and_png_open_and_are_not_empty(client: TestClient, fixed: Fixed) -> None:
    pdf = _report(client, "modality", "pdf", lang="en")
    assert pdf.headers["content-type"] == "application/pdf"
    reader = PdfReader(io.BytesIO(pdf.content))
    assert len(reader.pages) == 2
    text = reader.pages[0].extract_text()
    assert "Filmless savings report" in text
    assert "214,000" in text  # the total costs avoided is in the table

    png = _report(client, "modality", "png")
    assert png.headers["content-type"] == "image/png"
    image = Image.open(io.BytesIO(png.content))
    image.load()
    assert image.width > 500 and image.height > 200
    low, high = image.convert("L").getextrema()
    assert low < high  # something is drawn


def test_dashboard_speaks_vietnamese_and_english(client: TestClient, fixed: Fixed) -> None:
    params = {"from": START, "to": END}
    vi = client.get("/reports/savings", params={**params, "lang": "vi"})
    assert vi.status_code == 200, vi.text
    assert vi.headers["content-type"].startswith("text/html")
    assert 'lang="vi"' in vi.text and "Tiết kiệm ròng" in vi.text
    assert vi.text.count("data:image/png;base64,") == 3  # the three charts
    assert "Vận hành" in vi.text  # operations section
    en = client.get("/reports/savings", params=params,
                    headers={"Accept-Language": "fr;q=1, en;q=0.8, vi;q=0.5"})
    assert 'lang="en"' in en.text and "Net savings" in en.text
    assert "214,000" in en.text


def test_bad_period_is_a_problem(client: TestClient) -> None:
    response = client.get("/api/reports/savings", params={"from": "2025-03-01",
                                                          "to": "2025-01-01"})
    assert response.status_code == 400
    assert response.headers["content-type"].startswith("application/problem+json")
    assert client.get("/api/reports/savings", params={"group": "patient"}).status_code == 422


def test_printed_marks_are_checked_listed_and_audited(
        client: TestClient, priced_services: Services, fixed: Fixed) -> None:
    uid = fixed.uids["A"]
    for body, status in [({"sheets": 0}, 422), ({"sheets": 2, "sheet_size": "99x99"}, 400)]:
        response = client.post(f"/api/studies/{uid}/printed", json=body)
        assert response.status_code == status, response.text
        assert response.headers["content-type"].startswith("application/problem+json")
    missing = client.post("/api/studies/1.2.3.4/printed", json={"sheets": 1})
    assert missing.status_code == 404

    before = _report(client, "modality").json()["groups"]
    created = client.post(f"/api/studies/{uid}/printed", json={"sheets": 2})
    assert created.status_code == 201, created.text
    assert created.json()["sheet_size"] == "35x43"
    assert [m["sheets"] for m in client.get(f"/api/studies/{uid}/printed").json()] == [2]
    after = {g["key"]: g for g in _report(client, "modality").json()["groups"]}
    assert after["CT"]["printed_studies"] == 1 and after["CT"]["films_avoided"] == 0
    assert after["CT"]["printed_cost"] == 2 * 40_000 + 3_000
    assert {g["key"]: g for g in before}["CT"]["films_avoided"] == 3

    events = [e for e in priced_services.audit.events(action="printed") if e.study_uid == uid]
    assert len(events) == 1 and events[0].channel == "http"


def test_department_and_referring_come_from_the_ris_order(client: TestClient,
                                                         fixed: Fixed) -> None:
    """A study linked to an order is grouped by the order's department and referring
    physician (ris/savings/workflow.py), not by what its DICOM header says."""
    order = client.post("/api/orders", json={
        "patient": {"patient_id": "PC", "name": "TRẦN^THỊ C", "birth_date": "19800101",
                    "sex": "F"},
        "steps": [{"modality": "CR", "station_ae": "CR1", "start_date": "20250203",
                   "start_time": "0800", "description": "X-quang ngực"}],
        "procedure_code": "CRCH", "procedure_description": "X-quang ngực thẳng",
        "referring_physician_name": "LÊ^VĂN D", "department": "Nội khoa"})
    assert order.status_code == 201, order.text
    accession = order.json()["accession_number"]
    linked = client.post(f"/api/studies/{fixed.uids['C']}/link",
                         json={"accession_number": accession})
    assert linked.status_code == 200, linked.text
    by_department = {g["key"]: g["studies"]
                     for g in _report(client, "department").json()["groups"]}
    assert by_department == {"Radiology": 1, "Nội khoa": 1, "Emergency": 1}
    by_referring = {g["key"]: g["studies"]
                    for g in _report(client, "referring").json()["groups"]}
    assert by_referring == {"NGUYEN AN": 2, "LÊ VĂN D": 1}  # names shown with spaces
