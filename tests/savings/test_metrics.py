"""``/metrics``: the Prometheus figures move when the archive works (issue 6, point 5)."""

from __future__ import annotations

import re
from pathlib import Path

from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families
from pydicom.dataset import Dataset

from tests.conftest import Listener
from tests.dicom import scu
from tests.support.data import StudySpec, make_study
from viewer_api import create_app


def _samples(client: TestClient) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    response = client.get("/metrics")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    out = {}
    for family in text_string_to_metric_families(response.text):
        for s in family.samples:
            out[(s.name, frozenset(s.labels.items()))] = s.value
    return out


def _value(samples: dict, name: str, **labels: str) -> float:  # type: ignore[type-arg]
    return samples.get((name, frozenset(labels.items())), 0.0)


def test_metrics_change_after_a_c_store_and_a_retrieve(sqlite_listener: Listener,
                                                       tmp_path: Path) -> None:
    services = sqlite_listener.services
    spec = StudySpec(series=1, instances=3)
    datasets = make_study(spec)
    with TestClient(create_app(services)) as client:
        before = _samples(client)
        assert scu.store_datasets(sqlite_listener, datasets) == [0, 0, 0]
        assert client.get(f"/dicomweb/studies/{spec.study_uid}").status_code == 200
        with scu.Peer(sqlite_listener) as peer:
            identifier = Dataset()
            identifier.QueryRetrieveLevel = "STUDY"
            identifier.StudyInstanceUID = spec.study_uid
            assert peer.find(identifier).final == 0
        after = _samples(client)
        text = client.get("/metrics").text

    def delta(name: str, **labels: str) -> float:
        return _value(after, name, **labels) - _value(before, name, **labels)

    assert delta("pacs_instances_stored_total", outcome="stored") == 3
    stored_bytes = sum(len(ds.PixelData) for ds in datasets)
    assert delta("pacs_stored_bytes_total") > stored_bytes  # headers included
    assert delta("pacs_archive_operation_seconds_count", operation="store") == 3
    assert delta("pacs_archive_operation_seconds_count", operation="locate") == 1
    assert delta("pacs_archive_operation_seconds_count", operation="find") == 1
    assert delta("pacs_dicom_associations_total", event="accepted") == 2
    assert delta("pacs_dicom_associations_total", event="released") == 2
    assert _value(after, "pacs_storage_used_bytes") == services.savings.operations.storage_used()
    assert _value(after, "pacs_storage_used_bytes") > stored_bytes
    # HTTP latency is labelled by route template, never by the UIDs in the path.
    assert delta("pacs_http_request_seconds_count", method="GET",
                 route="/dicomweb/studies/{study}", status="200") == 1
    assert spec.study_uid not in text
    assert not re.search(r'route="/dicomweb/studies/1\.', text)


def test_refused_store_counts_as_an_error(sqlite_listener: Listener) -> None:
    services = sqlite_listener.services
    ds = make_study(StudySpec(series=1, instances=1))[0]
    with TestClient(create_app(services)) as client:
        before = _samples(client)
        bad = ds.copy()
        del bad.StudyInstanceUID  # a Type 1 UID missing: 0xA900 (PS3.4 B.2.3)
        assert scu.store_datasets(sqlite_listener, [bad]) == [0xA900]
        after = _samples(client)
    key = dict(operation="store", code="DatasetDoesNotMatchSopClass")
    assert _value(after, "pacs_errors_total", **key) - _value(before, "pacs_errors_total",
                                                              **key) == 1
