"""Patients and orders over REST: the status machine, issued identifiers, problems."""

from __future__ import annotations

from fastapi.testclient import TestClient

from ris.services import Services
from tests.http.problems import assert_problem
from tests.ris.conftest import VIETNAMESE, order_body, place_order


def test_an_order_without_accession_gets_one_and_a_study_uid(client: TestClient) -> None:
    order = place_order(client)
    assert order["accession_number"] and len(order["accession_number"]) <= 16
    assert order["requested_procedure_id"] == order["accession_number"]
    assert order["study_uid"].count(".") > 3
    assert order["status"] == "scheduled"
    assert order["patient"]["name"] == VIETNAMESE
    assert order["steps"][0]["modality"] == "CT"
    assert order["steps"][0]["sps_id"]
    other = place_order(client, patient_id="P101")
    assert other["accession_number"] != order["accession_number"]
    assert other["study_uid"] != order["study_uid"]

    fetched = client.get(f"/api/orders/{order['accession_number']}")
    assert fetched.status_code == 200
    assert fetched.json() == order
    listed = client.get("/api/orders", params={"patient_id": "P100"}).json()
    assert [o["accession_number"] for o in listed] == [order["accession_number"]]


def test_the_sender_accession_is_kept_and_a_duplicate_is_refused(client: TestClient) -> None:
    assert place_order(client, accession="ACC42")["accession_number"] == "ACC42"
    assert_problem(client.post("/api/orders", json=order_body(accession="ACC42")), 409)


def test_status_machine_walks_forward_and_refuses_invalid_moves(
        client: TestClient, services: Services) -> None:
    acc = place_order(client, accession="SM1")["accession_number"]
    for status in ("arrived", "in_progress", "completed", "preliminary", "final", "amended"):
        response = client.post(f"/api/orders/{acc}/status", json={"status": status})
        assert response.status_code == 200, response.text
        assert response.json()["status"] == status
        assert response.json()["times"][{"in_progress": "started_at"}.get(
            status, f"{status}_at")] is not None
    before = client.get(f"/api/orders/{acc}").json()
    # a final report can be amended, never taken back to preliminary or cancelled
    for bad in ("preliminary", "scheduled", "cancelled", "completed"):
        body = assert_problem(client.post(f"/api/orders/{acc}/status", json={"status": bad}),
                              409)
        assert "InvalidTransition" in str(body["type"])
    assert client.get(f"/api/orders/{acc}").json() == before
    # the service method the report service calls
    from ris.workflow import OrderStatus
    from storage.origin import Origin

    again = services.orders.advance(acc, OrderStatus.AMENDED, Origin("http"))
    assert again.status is OrderStatus.AMENDED


def test_cancelled_and_discontinued_are_ends(client: TestClient) -> None:
    acc = place_order(client, accession="C1")["accession_number"]
    assert client.post(f"/api/orders/{acc}/status", json={"status": "cancelled"}).json()[
        "status"] == "cancelled"
    assert_problem(client.post(f"/api/orders/{acc}/status", json={"status": "arrived"}), 409)
    acc2 = place_order(client, accession="D1")["accession_number"]
    assert_problem(client.post(f"/api/orders/{acc2}/status", json={"status": "final"}), 409)
    for status in ("in_progress", "discontinued"):
        client.post(f"/api/orders/{acc2}/status", json={"status": status})
    assert_problem(client.post(f"/api/orders/{acc2}/status", json={"status": "completed"}),
                   409)
    assert client.get(f"/api/orders/{acc2}").json()["status"] == "discontinued"


def test_bad_orders_are_problems(client: TestClient) -> None:
    assert_problem(client.post("/api/orders", json=order_body(priority="URGENTISSIMO")), 400)
    assert_problem(client.post("/api/orders", json=order_body(date="2025-03-01")), 422)
    assert_problem(client.post("/api/orders", json={**order_body(), "steps": []}), 422)
    assert_problem(client.get("/api/orders/NOPE"), 404)
    assert_problem(client.post("/api/orders/NOPE/status", json={"status": "arrived"}), 404)
    assert_problem(client.post("/api/orders/NOPE/status", json={"status": "bogus"}), 422)
    assert client.get("/api/orders").json() == []


def test_an_order_can_be_changed_until_the_exam_starts(client: TestClient) -> None:
    acc = place_order(client, accession="X1")["accession_number"]
    changed = client.put(f"/api/orders/{acc}", json=order_body(modality="MR", station="MR1",
                                                                priority="STAT"))
    assert changed.status_code == 200, changed.text
    assert changed.json()["priority"] == "STAT"
    assert [s["modality"] for s in changed.json()["steps"]] == ["MR"]
    client.post(f"/api/orders/{acc}/status", json={"status": "in_progress"})
    assert_problem(client.put(f"/api/orders/{acc}", json=order_body()), 409)


def test_patients_register_update_merge(client: TestClient, services: Services) -> None:
    created = client.post("/api/patients", json={"patient_id": "PA", "name": VIETNAMESE,
                                                 "birth_date": "19900102", "sex": "F"})
    assert created.status_code == 201, created.text
    assert client.get("/api/patients/PA").json()["name"] == VIETNAMESE
    updated = client.put("/api/patients/PA", json={"name": "LÊ^THỊ HOA", "sex": "F",
                                                   "birth_date": "19900102"})
    assert updated.json()["name"] == "LÊ^THỊ HOA"
    assert [p["patient_id"] for p in client.get("/api/patients",
                                                params={"name": "lê"}).json()] == ["PA"]
    assert_problem(client.put("/api/patients/NOBODY", json={"name": "X"}), 404)
    assert_problem(client.post("/api/patients", json={"patient_id": "PB",
                                                      "birth_date": "1990"}), 400)
    place_order(client, patient_id="PB", accession="M1")
    merged = client.post("/api/patients/PA/merge", json={"merged_patient_id": "PB"})
    assert merged.status_code == 200, merged.text
    assert client.get("/api/orders/M1").json()["patient"]["patient_id"] == "PA"
    assert client.get("/api/patients/PB").json()["merged_into"] == "PA"
    assert_problem(client.post("/api/patients/PA/merge", json={"merged_patient_id": "PA"}),
                   400)
    services.audit.flush()
    actions = {e.action for e in services.audit.events(limit=200)}
    assert {"patient-register", "patient-update", "patient-merge", "order-create",
            "patient-read"} <= actions
