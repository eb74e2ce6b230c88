"""RIS fixtures: the REST app over the services, an HL7 MLLP listener on a free port,
and helpers that place orders through the REST API."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from hl7.client import MLLPClient

from pacs.hl7_listener import Hl7Listener, Hl7Settings, start_hl7
from ris.services import Services
from tests.support.net import free_port
from viewer_api import create_app

VIETNAMESE = "NGUYỄN^VĂN AN"
"""A Vietnamese name with letters outside Latin-1 (ễ, ă), to check UTF-8 end to end."""


@pytest.fixture
def client(services: Services) -> Iterator[TestClient]:
    with TestClient(create_app(services)) as c:
        yield c


@pytest.fixture
def hl7_listener(services: Services) -> Iterator[Hl7Listener]:
    listener = start_hl7(services.hl7, Hl7Settings(host="127.0.0.1", port=free_port()))
    yield listener
    listener.shutdown()


def send_hl7(listener: Hl7Listener, *segments: str) -> str:
    """Send one message with the ``hl7`` package's MLLP client; return the ACK text."""
    with MLLPClient("127.0.0.1", listener.port) as peer:
        reply = peer.send_message("\r".join(segments) + "\r")
    return bytes(reply).strip(b"\x0b\x1c\r").decode("utf-8")


def order_body(patient_id: str = "P100", *, name: str = VIETNAMESE, accession: str = "",
               station: str = "CT1", modality: str = "CT", date: str = "20250301",
               time: str = "0900", priority: str = "ROUTINE", **extra: Any) -> dict[str, Any]:
    body = {
        "patient": {"patient_id": patient_id, "name": name, "birth_date": "19800101",
                    "sex": "M"},
        "steps": [{"modality": modality, "station_ae": station, "start_date": date,
                   "start_time": time, "description": "CT NGỰC"}],
        "accession_number": accession, "procedure_code": "CTCH",
        "procedure_description": "CT ngực không cản quang", "priority": priority,
        "referring_physician_name": "TRẦN^BÌNH", "department": "Nội khoa",
    }
    body.update(extra)
    return body


def place_order(client: TestClient, **kwargs: Any) -> dict[str, Any]:
    response = client.post("/api/orders", json=order_body(**kwargs))
    assert response.status_code == 201, response.text
    return response.json()  # type: ignore[no-any-return]
