"""Services with the report settings of a test: a key under tmp_path, an optional ORU peer."""

from __future__ import annotations

import asyncio
import queue
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import hl7
import hl7.mllp
import pytest

from ris.reports import ReportSettings
from ris.services import Services, build_services
from storage import StorageSettings
from tests.support.net import free_port

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
                             settings)
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
