"""RIS fixtures: the REST app over the services, an HL7 MLLP listener on a free port,
helpers that place orders through the REST API, services with the report settings of a
test (a key under tmp_path) and an ORU^R01 receiver."""

from __future__ import annotations

import asyncio
import queue
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import hl7
import hl7.mllp
import pytest
from fastapi.testclient import TestClient
from hl7.client import MLLPClient

from pacs.hl7_listener import Hl7Listener, Hl7Settings, start_hl7
from ris.reports import ReportSettings
from ris.services import Services, build_services
from storage import StorageSettings
from tests.conftest import AUTH_OFF
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


ServicesFactory = Callable[..., Services]


@pytest.fixture
def report_services(database_url: str, tmp_path: Path) -> Iterator[ServicesFactory]:
    """Build services on each index backend with report settings given by the test."""
    built: list[Services] = []

    def build(**options: object) -> Services:
        settings = ReportSettings(signing_key_path=tmp_path / "keys" / "report-signing.key",
                                  **options)  # type: ignore[arg-type]
        svc = build_services(StorageSettings(database_url=database_url,
                                             storage_url=f"file://{tmp_path / 'objects'}"),
                             AUTH_OFF, settings)
        built.append(svc)
        return svc

    yield build
    for svc in built:
        svc.close()


class OruReceiver:
    """An ``hl7.mllp`` asyncio server on a free port, acknowledging and keeping messages."""

    def __init__(self, answer: str = "AA") -> None:
        self.port = free_port()
        self.messages: queue.Queue[hl7.Message] = queue.Queue()
        self.answer = answer
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="oru-receiver",
                                        daemon=True)

    async def _handle(self, reader: hl7.mllp.HL7StreamReader,
                      writer: hl7.mllp.HL7StreamWriter) -> None:
        try:
            while not reader.at_eof():
                message = await reader.readmessage()
                self.messages.put(message)
                writer.writemessage(message.create_ack(self.answer))
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    async def _start(self) -> asyncio.AbstractServer:
        return await hl7.mllp.start_hl7_server(self._handle, "127.0.0.1", self.port,
                                               encoding="utf-8")

    def __enter__(self) -> OruReceiver:
        self._thread.start()
        self._server = asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(10)
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.close()
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)


@pytest.fixture
def oru_receiver() -> Iterator[OruReceiver]:
    with OruReceiver() as receiver:
        yield receiver
