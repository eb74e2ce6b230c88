"""``/api/reports/operations``: workload, turnaround, storage forecast, ingest errors."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from ris.services import Services
from storage.errors import PacsError
from storage.origin import CLI
from tests.savings.fixtures import END, START, Fixed


def test_operations_figures(client: TestClient, priced_services: Services, fixed: Fixed,
                            tmp_path: Path) -> None:
    broken = tmp_path / "broken.dcm"
    broken.write_bytes(b"not DICOM at all" * 20)
    with pytest.raises(PacsError):
        priced_services.archive.store(broken, CLI)
    priced_services.audit.flush()

    response = client.get("/api/reports/operations", params={"from": START, "to": END})
    assert response.status_code == 200, response.text
    body = response.json()
    today = date.today().isoformat()
    # A, C and D have exam dates in the period; all arrived today.
    assert body["studies_per_day"] == {today: {"CR": 2, "CT": 1}}
    turnaround = body["turnaround"]
    assert turnaround["acquired_to_archived"]["all"]["count"] == 3
    assert turnaround["archived_to_first_view"]["all"]["count"] == 1  # C, over WADO-RS
    assert turnaround["archived_to_first_view"]["CR"]["median_minutes"] < 5
    assert turnaround["archived_to_final_report"] == {}  # no RIS reports yet
    storage = body["storage"]
    assert storage["used_bytes"] == sum(fixed.sizes.values())
    assert storage["growth_bytes_per_day"] == round(sum(fixed.sizes.values()) / 30)
    assert storage["free_bytes"] > 0 and storage["days_until_full"] > 0
    errors = client.get("/api/reports/operations").json()["ingest_errors"]
    assert errors == {today: {"UnreadableDataset": 1}}
