"""``pacs report`` as a real process, and ``/metrics`` of ``pacs serve`` summing the
DICOM worker processes (prometheus_client multi-process mode)."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from pypdf import PdfReader

from tests.cli.helpers import clean_env, describe, run_pacs
from tests.cli.test_serve import Server, start_server  # noqa: F401 - fixture
from tests.savings.fixtures import END, START, write_studies
from tests.support import dcmtk
from tests.support.data import StudySpec, make_study, write


def test_pacs_report_savings_csv_json_pdf_and_printed(tmp_path: Path) -> None:
    env = clean_env(PACS_DATA_DIR=str(tmp_path / "data"),
                    PACS_SAVINGS__CD_SHARE="0.2", PACS_SAVINGS__MAX_SHEETS_PER_STUDY='{"CT": 3}')
    fixed = write_studies(tmp_path / "in")
    imported = run_pacs("import", "--quiet", tmp_path / "in", cwd=tmp_path, env=env)
    assert imported.returncode == 0, describe(imported)
    marked = run_pacs("report", "printed", fixed.uids["D"], "--sheets", "1", cwd=tmp_path,
                      env=env)
    assert marked.returncode == 0, describe(marked)

    period = ["--from", START, "--to", END, "--group", "modality"]
    as_json = run_pacs("report", "savings", *period, cwd=tmp_path, env=env)
    assert as_json.returncode == 0, describe(as_json)
    body = json.loads(as_json.stdout)
    groups = {g["key"]: g for g in body["groups"]}
    assert groups["CT"]["films_avoided"] == 3  # capped by the environment's cost model
    assert groups["CR"]["films_avoided"] == 2 and groups["CR"]["printed_studies"] == 1
    assert body["totals"]["cd_cost_avoided"] == 6_000
    assert body["totals"]["studies"] == 3

    as_csv = run_pacs("report", "savings", *period, "--format", "csv", "--output",
                      tmp_path / "r.csv", cwd=tmp_path, env=env)
    assert as_csv.returncode == 0, describe(as_csv)
    rows = list(csv.DictReader(io.StringIO((tmp_path / "r.csv").read_text())))
    assert {r["key"]: float(r["net_savings"]) for r in rows} == {
        **{g["key"]: g["net_savings"] for g in body["groups"]},
        "total": body["totals"]["net_savings"]}

    as_pdf = run_pacs("report", "savings", *period, "--format", "pdf", "-o",
                      tmp_path / "r.pdf", "--lang", "vi", cwd=tmp_path, env=env)
    assert as_pdf.returncode == 0, describe(as_pdf)
    reader = PdfReader(tmp_path / "r.pdf")
    assert "Báo cáo tiết kiệm" in reader.pages[0].extract_text()

    bad = run_pacs("report", "savings", "--from", "2025-13-01", cwd=tmp_path, env=env)
    assert bad.returncode == 2 and "not a date" in bad.stderr


@pytest.mark.dcmtk
def test_metrics_of_pacs_serve_sum_the_dicom_workers(
        start_server: Callable[..., Server], tmp_path: Path) -> None:  # noqa: F811
    server = start_server(workers=2)
    server.wait_ready()
    files = [write(ds, tmp_path / "out") for ds in make_study(StudySpec(series=1,
                                                                        instances=4))]
    stored = dcmtk.run("storescu", "-aec", "PACS", "-to", "10", "127.0.0.1",
                       str(server.dicom_port), *map(str, files), timeout=30)
    assert stored.returncode == 0, stored.stdout + stored.stderr + server.output()
    text = httpx.get(f"{server.base_url}/metrics", timeout=10).text
    samples = {(s.name, tuple(sorted(s.labels.items()))): s.value
               for f in text_string_to_metric_families(text) for s in f.samples}
    assert samples[("pacs_instances_stored_total", (("outcome", "stored"),))] == 4
    # the C-ECHOs of wait_ready and the store: several associations, in worker processes
    assert samples[("pacs_dicom_associations_total", (("event", "accepted"),))] >= 2
    # storescu rewrites the file meta, so the received size is the archive's to say
    used = samples[("pacs_storage_used_bytes", ())]
    assert used == samples[("pacs_stored_bytes_total", ())]
    assert abs(used - sum(p.stat().st_size for p in files)) < 200
    assert (server.data_dir / "metrics").is_dir()
