"""The HL7 v2 listener: MLLP over TCP (HL7 v2.5 Appendix C), on the ``hl7`` package.

An asyncio server from :func:`hl7.mllp.start_hl7_server` runs in its own thread; each
received block is handed to :meth:`ris.hl7.Hl7Handler.handle_bytes` in a worker thread
(it talks to the database) and the acknowledgement goes back on the same connection.
Parsing and business rules are in :mod:`ris.hl7`; this module only moves bytes.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from dataclasses import dataclass
from typing import Any

from hl7.mllp import start_hl7_server
from hl7.mllp.exceptions import InvalidBlockError

from ris.hl7 import Hl7Handler
from storage.origin import Origin

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Hl7Settings:
    host: str = ""
    port: int = 2575


class Hl7Listener:
    """A running MLLP listener; :meth:`shutdown` stops it."""

    def __init__(self, handler: Hl7Handler, settings: Hl7Settings) -> None:
        self._handler = handler
        self._settings = settings
        self._loop = asyncio.new_event_loop()
        self._server: Any = None
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="hl7-listener", daemon=True)

    def start(self) -> Hl7Listener:
        self._thread.start()
        self._ready.wait(30)
        if self._error is not None:
            raise self._error
        return self

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        try:
            self._server = self._loop.run_until_complete(start_hl7_server(
                self._connection, self._settings.host or None, self._settings.port,
                encoding="utf-8", encoding_errors="replace", limit=4 << 20))
        except BaseException as exc:  # reported to start()
            self._error = exc
            self._ready.set()
            return
        self._ready.set()
        self._loop.run_forever()
        self._server.close()
        self._loop.run_until_complete(self._server.wait_closed())
        self._loop.close()

    async def _connection(self, reader: Any, writer: Any) -> None:
        peer = writer.get_extra_info("peername") or ("", 0)
        origin = Origin(channel="hl7", address=f"{peer[0]}:{peer[1]}")
        loop = asyncio.get_running_loop()
        try:
            while not reader.at_eof():
                try:
                    block = await reader.readblock()
                except (InvalidBlockError, ValueError):
                    log.warning("HL7: invalid MLLP block from %s", origin.address)
                    break
                except asyncio.IncompleteReadError:
                    break
                ack = await loop.run_in_executor(None, self._handler.handle_bytes, block,
                                                 origin)
                writer.writeblock(ack)
                await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            writer.close()

    @property
    def port(self) -> int:
        return int(self._server.sockets[0].getsockname()[1])

    def shutdown(self) -> None:
        if self._loop.is_running():
            self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)


def start_hl7(handler: Hl7Handler, settings: Hl7Settings) -> Hl7Listener:
    """Start listening (raises ``OSError`` if the port is taken)."""
    return Hl7Listener(handler, settings).start()
