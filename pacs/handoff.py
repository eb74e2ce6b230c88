"""One DICOM listener in ``pacs serve``, handing each connection to the least-busy worker.

A DICOM worker process is bound by the GIL to about one core. When the workers shared
the port through SO_REUSEPORT, the kernel hashed each connection to a worker without
regard to load, so with four workers and four associations two or three workers often
got all the work. Here the ``pacs serve`` process owns the port instead: its
:class:`Dispatcher` accepts every connection, passes the socket's descriptor
(``SCM_RIGHTS``, :func:`socket.send_fds`) over a ``SOCK_SEQPACKET`` socket pair to the
live worker with the fewest open associations, and closes its own copy. The worker
receives it in place of an ``accept()`` (:class:`HandoffServerMixin`), wraps TLS there
as pynetdicom's server does, and writes one byte back on the pair when the association
has ended (:class:`CountedRequestHandler`), which is how the dispatcher keeps its counts.
A worker whose end of the pair is closed (it died) is skipped from then on.
"""

from __future__ import annotations

import logging
import selectors
import socket
import threading
from dataclasses import dataclass
from typing import Any

from pynetdicom.association import Association

from pacs.reactor import EventDrivenRequestHandler

log = logging.getLogger(__name__)

_HANDED = b"\1"
"""The one-byte message that carries a connection's descriptor to a worker."""
_ENDED = b"\0"
"""The one-byte message a worker sends back when an association has ended."""


def worker_channel() -> tuple[socket.socket, socket.socket]:
    """The dispatcher's end and the worker's end of a connection hand-off channel.

    ``SOCK_SEQPACKET`` keeps each message (and the descriptor it carries) whole.
    """
    return socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)


@dataclass
class _Worker:
    name: str
    channel: socket.socket
    open: int = 0
    alive: bool = True


class Dispatcher:
    """Accepts DICOM connections in ``pacs serve`` and hands each to the least-busy worker.

    Bind first (:meth:`bind`, so a taken port fails before any worker is spawned), add the
    workers' channels (:meth:`add`), then :meth:`start` the accepting thread; connections
    that arrive meanwhile wait in the listen backlog. :meth:`stop` closes everything.
    """

    def __init__(self, listener: socket.socket) -> None:
        self._listener = listener
        self._workers: list[_Worker] = []
        self._next = 0
        self._wake_r, self._wake_w = socket.socketpair()
        self._stopping = False
        self._thread: threading.Thread | None = None

    @classmethod
    def bind(cls, host: str, port: int, backlog: int = 128) -> Dispatcher:
        """Listen on ``(host, port)``; raises :class:`OSError` if the port is taken."""
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        listener = socket.socket(family, socket.SOCK_STREAM)
        try:
            listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            listener.bind((host, port))
            listener.listen(backlog)
            # accept() must not block the thread when a peer gives up after select().
            listener.setblocking(False)
        except OSError:
            listener.close()
            raise
        return cls(listener)

    def add(self, name: str, channel: socket.socket) -> None:
        """Hand connections to the worker at the other end of ``channel`` as well."""
        self._workers.append(_Worker(name, channel))

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="dicom-dispatcher", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop accepting, and close the listener and every channel (workers then stop)."""
        self._stopping = True
        self._wake_w.send(b"\0")
        if self._thread is not None:
            self._thread.join(5)
        for sock in (self._listener, self._wake_r, self._wake_w,
                     *(w.channel for w in self._workers)):
            sock.close()

    # -- the accepting thread ---------------------------------------------------------------
    def _run(self) -> None:
        with selectors.DefaultSelector() as selector:
            selector.register(self._listener, selectors.EVENT_READ)
            selector.register(self._wake_r, selectors.EVENT_READ)
            for worker in self._workers:
                selector.register(worker.channel, selectors.EVENT_READ, worker)
            while not self._stopping:
                for key, _ in selector.select():
                    if key.fileobj is self._listener:
                        self._accept()
                    elif key.data is not None:
                        self._read_ended(key.data, selector)

    def _accept(self) -> None:
        try:
            conn, _address = self._listener.accept()
        except OSError:  # nothing to accept after all (the peer gave up); or we are stopping
            return
        with conn:
            # The option belongs to the socket, so it holds in the worker too: without it
            # each small DIMSE message waits ~40 ms for the peer's delayed ACK.
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            while (worker := self._least_busy()) is not None:
                try:
                    socket.send_fds(worker.channel, [_HANDED], [conn.fileno()],
                                    socket.MSG_NOSIGNAL)
                except OSError:
                    self._lost(worker)
                    continue
                worker.open += 1
                return
            log.error("no DICOM worker is alive: connection refused")

    def _least_busy(self) -> _Worker | None:
        """The live worker with the fewest open associations; ties go round the workers,
        so that short associations one after another are spread too."""
        n = len(self._workers)
        order = [self._workers[(self._next + i) % n] for i in range(n)]
        live = [w for w in order if w.alive]
        if not live:
            return None
        chosen = min(live, key=lambda w: w.open)
        self._next = (self._workers.index(chosen) + 1) % n
        return chosen

    def _read_ended(self, worker: _Worker, selector: selectors.BaseSelector) -> None:
        try:
            message = worker.channel.recv(16)
        except OSError:
            message = b""
        if not message:
            selector.unregister(worker.channel)
            self._lost(worker)
            return
        worker.open = max(0, worker.open - len(message))

    def _lost(self, worker: _Worker) -> None:
        if worker.alive and not self._stopping:
            log.warning("DICOM worker %s is gone; new associations go to the others",
                        worker.name)
        worker.alive = False


class HandoffServerMixin:
    """Makes pynetdicom's association server take connections from a :class:`Dispatcher`.

    Instead of binding the DICOM port it keeps ``handoff`` (the worker's end of the
    channel) as its socket, so ``serve_forever`` wakes when a descriptor arrives, and
    :meth:`get_request` returns the handed-in socket as ``accept()`` would, wrapped in TLS
    when the server has an ``ssl_context`` (pynetdicom's own server does the same).
    """

    handoff: socket.socket
    dispatcher_gone: threading.Event
    socket: Any
    server_address: Any
    ssl_context: Any
    daemon_threads = True
    """Each request thread waits for its association (:class:`CountedRequestHandler`):
    the server's shutdown must not wait for them."""

    def server_bind(self) -> None:
        self.socket.close()  # the TCP socket socketserver made; the dispatcher has the port
        self.socket = self.handoff
        self.dispatcher_gone = threading.Event()

    def server_activate(self) -> None:
        pass

    def get_request(self) -> tuple[socket.socket, Any]:
        message, fds, _flags, _address = socket.recv_fds(self.handoff, 1, 1)
        if not message:
            self.dispatcher_gone.set()
            raise OSError("the DICOM dispatcher has closed the hand-off channel")
        if not fds:
            raise OSError("a hand-off message without a connection")
        sock = socket.socket(fileno=fds[0])
        sock.setblocking(True)
        try:
            address = sock.getpeername()
            if self.ssl_context:
                sock = self.ssl_context.wrap_socket(sock, server_side=True)
        except OSError:  # includes ssl.SSLError: a failed handshake ends the connection
            sock.close()
            self.association_ended()
            raise
        return sock, address

    def association_ended(self) -> None:
        """Tell the dispatcher that one of this worker's connections has ended."""
        try:
            self.handoff.send(_ENDED, socket.MSG_NOSIGNAL)
        except OSError:  # the dispatcher is gone: this worker is stopping anyway
            pass


class CountedRequestHandler(EventDrivenRequestHandler):
    """:class:`pacs.reactor.EventDrivenRequestHandler` that reports when its association ends.

    pynetdicom runs each association in its own thread and returns from ``handle`` at
    once; this handler's request thread waits for that thread, however the association
    ends (release, abort, rejection, network error), then tells the server.
    """

    _assoc: Association | None = None

    def _create_association(self) -> Association:
        self._assoc = super()._create_association()
        return self._assoc

    def finish(self) -> None:
        try:
            if self._assoc is not None and self._assoc.ident is not None:
                self._assoc.join()
        finally:
            self.server.association_ended()  # type: ignore[attr-defined]
