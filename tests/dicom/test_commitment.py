"""Storage Commitment Push Model over real associations (PS3.4 Annex J).

A pynetdicom SCU sends the N-ACTION and receives the N-EVENT-REPORT with an
EVT_N_EVENT_REPORT handler: on the same association while it stays connected, or, once it
has gone, on a new association the archive opens to the AE registered with ``pacs ae add``.
Failures are real: an unknown UID, an object deleted from storage, an object whose bytes
changed, and a wrong SOP Class.
"""

from __future__ import annotations

import queue
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pydicom.dataset import Dataset
from pydicom.uid import CTImageStorage, MRImageStorage, generate_uid
from pynetdicom import AE, evt
from pynetdicom.dimse_messages import N_EVENT_REPORT_RSP
from pynetdicom.sop_class import StorageCommitmentPushModel  # type: ignore[attr-defined]

from ris.services import Services
from storage.index.models import Instance
from storage.origin import CLI
from tests.conftest import Listener
from tests.support.data import StudySpec, make_study, write
from tests.support.net import free_port

WELL_KNOWN = "1.2.840.10008.1.20.1.1"
SCU = "COMMITSCU"


def _seed(services: Services, tmp_path: Path, n: int) -> list[Dataset]:
    datasets = make_study(StudySpec(instances=n))
    for ds in datasets:
        services.archive.store(write(ds, tmp_path / "in"), CLI)
    return datasets


def _request(refs: list[tuple[str, str]], transaction_uid: str) -> Dataset:
    ds = Dataset()
    ds.TransactionUID = transaction_uid
    ds.ReferencedSOPSequence = []
    for cls, uid in refs:
        item = Dataset()
        item.ReferencedSOPClassUID = cls
        item.ReferencedSOPInstanceUID = uid
        ds.ReferencedSOPSequence.append(item)
    return ds


def _object_key(services: Services, uid: str) -> str:
    from sqlalchemy import select
    with services.db.read() as s:
        return str(s.scalar(select(Instance.object_key).where(Instance.sop_instance_uid == uid)))


class _Reports:
    """The N-EVENT-REPORTs an SCU receives, each handed over once its N-EVENT-REPORT-RSP
    has been queued to the peer: a test that releases as soon as the handler has run
    would queue the A-RELEASE-RQ first, and pynetdicom would then refuse to send the
    response in state Sta7 (an exception in its DUL thread, and the archive waiting
    for a response that never comes)."""

    def __init__(self) -> None:
        self._received: queue.Queue[tuple[int, Dataset, str]] = queue.Queue()
        self._answered: queue.Queue[tuple[int, Dataset, str]] = queue.Queue()

    def handlers(self) -> list[Any]:
        return [(evt.EVT_N_EVENT_REPORT, self._report), (evt.EVT_DIMSE_SENT, self._sent)]

    def _report(self, event: evt.Event) -> tuple[int, None]:
        self._received.put((event.event_type, event.event_information,
                            str(event.assoc.requestor.ae_title).strip()))
        return 0x0000, None

    def _sent(self, event: evt.Event) -> None:
        if isinstance(event.message, N_EVENT_REPORT_RSP):
            self._answered.put(self._received.get_nowait())

    def get(self, timeout: float) -> tuple[int, Dataset, str]:
        return self._answered.get(timeout=timeout)


def _scu() -> AE:
    ae = AE(ae_title=SCU)
    ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = 20
    ae.add_requested_context(StorageCommitmentPushModel)
    return ae


def test_all_committed_on_the_same_association(listener: Listener, tmp_path: Path) -> None:
    datasets = _seed(listener.services, tmp_path, 3)
    refs = [(str(d.SOPClassUID), str(d.SOPInstanceUID)) for d in datasets]
    reports = _Reports()
    assoc = _scu().associate(listener.host, listener.port, ae_title=listener.ae_title,
                             evt_handlers=reports.handlers())
    assert assoc.is_established
    try:
        transaction = generate_uid()
        status, _reply = assoc.send_n_action(_request(refs, transaction), 1,
                                             StorageCommitmentPushModel, WELL_KNOWN)
        assert status.Status == 0x0000
        event_type, info, _ = reports.get(timeout=20)
    finally:
        assoc.release()
    assert event_type == 1
    assert info.TransactionUID == transaction
    assert sorted((i.ReferencedSOPClassUID, i.ReferencedSOPInstanceUID)
                  for i in info.ReferencedSOPSequence) == sorted(refs)
    assert "FailedSOPSequence" not in info
    listener.services.audit.flush()
    assert [e.outcome for e in listener.services.audit.events(action="commitment")] == ["ok"]


def test_failures_are_listed_with_their_reason(listener: Listener, tmp_path: Path) -> None:
    services = listener.services
    good, deleted, corrupted, conflict = _seed(services, tmp_path, 4)
    services.objects.delete(_object_key(services, str(deleted.SOPInstanceUID)))
    key = _object_key(services, str(corrupted.SOPInstanceUID))
    data = bytearray(services.objects.open(key).read())
    data[-1] ^= 0xFF  # one flipped bit of pixel data, same size
    services.objects.delete(key)
    import io
    services.objects.put(key, io.BytesIO(bytes(data)), size=len(data))
    unknown = generate_uid()
    refs = [(CTImageStorage, str(good.SOPInstanceUID)),
            (CTImageStorage, str(deleted.SOPInstanceUID)),
            (CTImageStorage, str(corrupted.SOPInstanceUID)),
            (MRImageStorage, str(conflict.SOPInstanceUID)),
            (CTImageStorage, unknown)]
    reports = _Reports()
    assoc = _scu().associate(listener.host, listener.port, ae_title=listener.ae_title,
                             evt_handlers=reports.handlers())
    try:
        status, _ = assoc.send_n_action(_request(refs, generate_uid()), 1,
                                        StorageCommitmentPushModel, WELL_KNOWN)
        assert status.Status == 0x0000
        event_type, info, _ = reports.get(timeout=20)
    finally:
        assoc.release()
    assert event_type == 2
    assert [i.ReferencedSOPInstanceUID for i in info.ReferencedSOPSequence] == [
        good.SOPInstanceUID]
    failed = {i.ReferencedSOPInstanceUID: i.FailureReason for i in info.FailedSOPSequence}
    assert failed == {deleted.SOPInstanceUID: 0x0110, corrupted.SOPInstanceUID: 0x0110,
                      conflict.SOPInstanceUID: 0x0119, unknown: 0x0112}
    services.audit.flush()
    assert [e.outcome for e in services.audit.events(action="commitment")] == ["partial"]


def test_unknown_action_type_is_refused(sqlite_listener: Listener) -> None:
    assoc = _scu().associate(sqlite_listener.host, sqlite_listener.port,
                             ae_title=sqlite_listener.ae_title)
    try:
        status, _ = assoc.send_n_action(_request([(CTImageStorage, generate_uid())], "1.2.3"),
                                        7, StorageCommitmentPushModel, WELL_KNOWN)
        no_refs = Dataset()
        no_refs.TransactionUID = generate_uid()  # Referenced SOP Sequence missing
        missing, _ = assoc.send_n_action(no_refs, 1, StorageCommitmentPushModel, WELL_KNOWN)
    finally:
        assoc.release()
    assert status.Status == 0x0123
    assert missing.Status == 0x0120


@pytest.fixture
def commitment_receiver() -> Iterator[tuple[int, _Reports]]:
    """A pynetdicom AE that accepts the archive's report association (SCU of the service)."""
    reports = _Reports()
    ae = AE(ae_title=SCU)
    ae.add_supported_context(StorageCommitmentPushModel, scu_role=True, scp_role=True)
    port = free_port()
    server = ae.start_server(("127.0.0.1", port), block=False,
                             evt_handlers=reports.handlers())
    yield port, reports
    server.shutdown()


def test_report_on_a_new_association_once_the_scu_has_gone(
        listener: Listener, tmp_path: Path,
        commitment_receiver: tuple[int, _Reports]) -> None:
    port, reports = commitment_receiver
    listener.services.aes.add(SCU, "127.0.0.1", port)  # `pacs ae add` has its own tests
    # Enough instances that reading them back from storage outlasts the abort below.
    datasets = _seed(listener.services, tmp_path, 30)
    refs = [(str(d.SOPClassUID), str(d.SOPInstanceUID)) for d in datasets]
    unknown = generate_uid()
    transaction = generate_uid()

    assoc = _scu().associate(listener.host, listener.port, ae_title=listener.ae_title)
    status, _ = assoc.send_n_action(_request(refs + [(CTImageStorage, unknown)], transaction),
                                    1, StorageCommitmentPushModel, WELL_KNOWN)
    assoc.abort()  # gone before the report can come on this association
    assert status.Status == 0x0000
    event_type, info, calling = reports.get(timeout=30)
    assert calling == listener.ae_title  # the archive opened this association
    assert event_type == 2
    assert info.TransactionUID == transaction
    assert sorted(i.ReferencedSOPInstanceUID for i in info.ReferencedSOPSequence) == sorted(
        uid for _, uid in refs)
    assert [(i.ReferencedSOPInstanceUID, i.FailureReason)
            for i in info.FailedSOPSequence] == [(unknown, 0x0112)]
