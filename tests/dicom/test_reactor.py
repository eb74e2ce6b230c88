"""The acceptor's event-driven loops (pacs/reactor.py), through real associations.

The loops block on the socket and on queues instead of polling; these cases check that
what pynetdicom's polling loops did still happens: data sets arrive whole and are adopted
from the staging area, an idle association is aborted at the network timeout, a peer's
abort ends the association, and the listener serves the next association afterwards.
Last, a reactor of an association we request leaves a request's responses to the request.
"""

from __future__ import annotations

import gc
import hashlib
import socket
import struct
import threading
import time
from typing import Any

import pytest
from pynetdicom import sop_class as sc
from sqlalchemy import select

from pacs.reactor import EventDrivenAssociation
from storage.index.models import Instance
from tests.dicom import scu
from tests.dicom.conftest import ServedListener
from tests.support.data import StudySpec, make_study


def test_stored_objects_are_adopted_from_the_staging_area(served: ServedListener) -> None:
    datasets = make_study(StudySpec(series=2, instances=3))
    assert scu.store_datasets(served, datasets) == [0x0000] * 6
    assert scu.staging_files(served.services) == []  # renamed into place, none left behind
    with served.services.db.read() as s:
        digests = dict(s.execute(select(Instance.sop_instance_uid, Instance.sha256)).all())
    for ds in datasets:
        (stored,) = scu.stored_objects(served.services, ds.SOPInstanceUID)
        assert scu.read_bytes(stored).PixelData == ds.PixelData
        # computed while the data set arrived, it must be the digest of the stored bytes
        assert digests[ds.SOPInstanceUID] == hashlib.sha256(stored).hexdigest()


def test_associations_are_event_driven(served: ServedListener) -> None:
    with scu.association(served, [(sc.Verification, scu.UNCOMPRESSED)]) as assoc:
        assert assoc.send_c_echo().Status == 0x0000
        acceptors = served.server.active_associations
    assert acceptors and all(isinstance(a, EventDrivenAssociation) for a in acceptors)


def _associate_raw(host: str, port: int) -> socket.socket:
    """A bare TCP peer that sends an A-ASSOCIATE-RQ for Verification and reads the AC."""
    def item(kind: int, body: bytes) -> bytes:
        return struct.pack(">BBH", kind, 0, len(body)) + body

    app = item(0x10, b"1.2.840.10008.3.1.1.1")
    pc = item(0x20, bytes([1, 0, 0, 0]) + item(0x30, b"1.2.840.10008.1.1")
              + item(0x40, b"1.2.840.10008.1.2"))
    user = item(0x50, item(0x51, struct.pack(">I", 16384))
                + item(0x52, b"1.2.826.0.1.3680043.9.3811.0"))
    body = (struct.pack(">HH", 1, 0) + b"PACS".ljust(16) + b"RAWPEER".ljust(16) + bytes(32)
            + app + pc + user)
    sock = socket.create_connection((host, port), timeout=10)
    sock.sendall(struct.pack(">BBI", 0x01, 0, len(body)) + body)
    header = sock.recv(6)
    assert header[:1] == b"\x02", "association not accepted"
    remaining = struct.unpack(">I", header[2:6])[0]
    while remaining:
        remaining -= len(sock.recv(remaining))
    return sock


def _wait_closed(sock: socket.socket, timeout: float) -> bytes:
    """Everything the listener sends until it closes the connection."""
    sock.settimeout(timeout)
    received = b""
    while chunk := sock.recv(4096):
        received += chunk
    return received


def test_idle_association_is_aborted_at_the_network_timeout(served: ServedListener) -> None:
    ae = served.server.ae
    old, ae.network_timeout = ae.network_timeout, 1
    try:
        sock = _associate_raw(served.host, served.port)
        with sock:
            received = _wait_closed(sock, timeout=10)  # raises if it never comes
        assert received[:1] == b"\x07", "expected an A-ABORT PDU before the close"
    finally:
        ae.network_timeout = old
    assert scu.echo(served) == 0x0000


def test_peer_abort_ends_the_association_and_the_listener_goes_on(
        served: ServedListener) -> None:
    sock = _associate_raw(served.host, served.port)
    with sock:
        sock.sendall(struct.pack(">BBIBBBB", 0x07, 0, 4, 0, 0, 0, 0))  # A-ABORT-RQ
        assert _wait_closed(sock, timeout=10) == b""
    assert scu.echo(served) == 0x0000


def test_the_listener_runs_no_full_collection_per_sixty_connections(
        sqlite_listener: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """pynetdicom's server calls ``gc.collect()`` at every 60th connection or idle poll:
    115-140 ms holding the GIL in a warmed-up worker, a stall of all its associations.
    Ours leaves collection to Python's own collector."""
    collections: list[int] = []
    real = gc.collect

    def spy(*args: Any) -> int:
        collections.append(1)
        return real(*args)

    monkeypatch.setattr(gc, "collect", spy)
    for _ in range(65):
        assert scu.echo(sqlite_listener) == 0x0000
    assert collections == []


class _LateCheckpoint(threading.Event):
    """A reactor's checkpoint after which the reactor's thread is held up for a while, as
    it may be on a loaded machine, with ``_is_paused`` still true (pacs.reactor)."""

    def wait(self, timeout: float | None = None) -> bool:
        passed = super().wait(timeout)
        time.sleep(0.02)
        return passed


def test_a_late_reactor_leaves_the_responses_to_the_request(served: ServedListener) -> None:
    model = scu.FIND_MODELS["study"]
    with scu.association(served, [(model, scu.UNCOMPRESSED)]) as assoc:
        assoc.dimse_timeout = 2  # a taken response shows as a missing one after 2 s
        late = _LateCheckpoint()
        late.set()
        assoc._reactor_checkpoint = late
        for _ in range(5):
            # Sent now, most likely while the reactor is held up just past its
            # checkpoint; its response then waits in the queue until it is read.
            responses = assoc.send_c_find(scu.query("STUDY", StudyInstanceUID=""), model)
            time.sleep(0.05)
            assert [int(status.get("Status", -1)) for status, _ in responses] == [0x0000]
        assert assoc.is_established
