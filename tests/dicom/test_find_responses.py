"""Pending C-FIND responses written several at a time (pacs.scp.responses._Outbox).

An answer of hundreds of matches leaves the listener in a few socket writes instead of one
per match. These cases check, through real associations, what a peer must still see: every
match exactly once, in the order the archive found them, each in P-DATA-TF PDUs that
respect the peer's maximum length (PS3.8 9.3.5, D.1), the final status last, and a
C-CANCEL (PS3.7 9.3.2.3) honoured part-way with the association still usable after it.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pydicom import dcmread
from pydicom.dataset import Dataset
from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian, generate_uid
from pynetdicom import AE, evt

from pacs.scp import find as find_module
from storage.origin import Origin
from tests.dicom import scu
from tests.support import dcmtk
from tests.support.data import StudySpec, make_instance, write

FIND = scu.FIND_MODELS["study"]
STUDIES = 400  # a few batches of pending responses at any PDU size


@pytest.fixture(scope="module")
def listener(module_sqlite_listener: Any) -> Any:
    """About the network, not the index: SQLite only (tests/dicom/conftest.py)."""
    return module_sqlite_listener


@pytest.fixture(scope="module")
def many_studies(listener: Any, tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    """``STUDIES`` one-image studies (the archive's order = the order stored), UIDs."""
    tmp_path = tmp_path_factory.mktemp("studies")
    uids = []
    origin = Origin(channel="cli", username="test")
    for n in range(STUDIES):
        spec = StudySpec(patient_id=f"BATCH{n % 7}", patient_name=f"BATCH^P{n % 7}",
                         accession=f"B{n:04d}", study_date="20250301",
                         description=f"STUDY {n}")
        ds = make_instance(spec, generate_uid(), 1, 1)
        path = write(ds, tmp_path / "in")
        listener.services.archive.store(path, origin)
        path.unlink()
        uids.append(spec.study_uid)
    return uids


def _identifier(**keys: str) -> Dataset:
    """The study-level query of these tests: the generated studies' date, five return keys."""
    defaults = {"StudyDate": "20250301", "StudyInstanceUID": "", "PatientID": "",
                "AccessionNumber": "", "StudyDescription": ""}
    return scu.query("STUDY", **{**defaults, **keys})


def _associate(listener: Any, max_pdu: int = 16382) -> Any:
    ae = AE(ae_title=scu.SCU_TITLE)
    ae.add_requested_context(FIND)
    ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = 30
    assoc = ae.associate(listener.host, listener.port, ae_title=listener.ae_title,
                         max_pdu=max_pdu)
    assert assoc.is_established
    assert assoc.requestor.maximum_length == max_pdu
    return assoc


def _find(assoc: Any, identifier: Dataset) -> tuple[list[Dataset], list[int]]:
    matches, statuses = [], []
    for status, ds in assoc.send_c_find(identifier, FIND):
        assert status is not None, "no response (timeout or aborted association)"
        statuses.append(int(status.Status))
        if status.Status in (0xFF00, 0xFF01):
            matches.append(ds)
    return matches, statuses


def _check_matches(matches: list[Dataset], uids: list[str]) -> None:
    assert [m.StudyInstanceUID for m in matches] == uids
    for n, m in enumerate(matches):
        assert m.AccessionNumber == f"B{n:04d}"
        assert m.StudyDescription == f"STUDY {n}"
        assert m.PatientID == f"BATCH{n % 7}"
        assert m.QueryRetrieveLevel == "STUDY"


@pytest.mark.parametrize("max_pdu", [16382, 0, 200], ids=["16k-pdu", "unlimited-pdu",
                                                           "pdu-smaller-than-a-match"])
def test_pynetdicom_receives_every_match_in_order(listener: Any,
                                                  many_studies: list[str],
                                                  max_pdu: int) -> None:
    """With 200 bytes every command and identifier is fragmented over several PDUs."""
    pdus: list[int] = []
    assoc = _associate(listener, max_pdu)
    try:
        assoc.bind(evt.EVT_PDU_RECV, lambda event: pdus.append(len(event.pdu.encode())))
        matches, statuses = _find(assoc, _identifier())
        _check_matches(matches, many_studies)
        assert statuses == [0xFF00] * STUDIES + [0x0000]
        # the same association answers the next request as well
        again, statuses = _find(assoc, _identifier(PatientID="BATCH3"))
        assert [m.StudyInstanceUID for m in again] == many_studies[3::7]
        assert statuses[-1] == 0x0000
    finally:
        assoc.release()
    if max_pdu:
        # PDU-length field + 6 header bytes never exceed the negotiated maximum (PS3.8 D.1)
        assert max(pdus) <= max_pdu + 6


def test_findscu_receives_every_match_in_order(listener: Any, many_studies: list[str],
                                               tmp_path: Path) -> None:
    """dcmtk expects one message per PDU: a batch that put two in one crashed findscu."""
    out = tmp_path / "rsp"
    out.mkdir()
    result = dcmtk.run("findscu", "-S", "-X", "-od", str(out), "-aet", scu.SCU_TITLE,
                       "-aec", listener.ae_title, "-k", "QueryRetrieveLevel=STUDY",
                       "-k", "StudyDate=20250301", "-k", "StudyInstanceUID",
                       "-k", "PatientID", "-k", "AccessionNumber", "-k", "StudyDescription",
                       listener.host, str(listener.port))
    assert result.returncode == 0, result.stderr[-2000:]
    files = sorted(out.glob("rsp*.dcm"), key=lambda p: int(re.sub(r"\D", "", p.name)))
    _check_matches([dcmread(p) for p in files], many_studies)


def test_cancel_part_way(listener: Any, many_studies: list[str],
                         monkeypatch: pytest.MonkeyPatch) -> None:
    """A slow producer: the first matches reach the peer before the answer is complete
    (a batch waits at most a few milliseconds), the C-CANCEL stops it, the final status is
    Cancel after the pending responses sent so far, and the association goes on."""
    archive = listener.services.archive
    find = archive.find

    def slow_find(*args: Any, **kwargs: Any) -> Iterator[Any]:
        for match in find(*args, **kwargs):
            time.sleep(0.002)
            yield match

    monkeypatch.setattr(archive, "find", slow_find)
    assoc = _associate(listener)
    try:
        received, statuses = [], []
        started = time.monotonic()
        for status, ds in assoc.send_c_find(_identifier(), FIND, msg_id=7):
            assert status is not None
            statuses.append(int(status.Status))
            if status.Status == 0xFF00:
                received.append(ds.StudyInstanceUID)
                if len(received) == 5:
                    first_five = time.monotonic() - started
                    assoc.send_c_cancel(7, query_model=FIND)
        assert first_five < 0.4  # not held back until the whole answer (~0.8 s) is ready
        assert statuses[-1] == 0xFE00
        assert 5 <= len(received) < STUDIES
        assert received == many_studies[:len(received)]
        monkeypatch.undo()
        matches, statuses = _find(assoc, _identifier())
        _check_matches(matches, many_studies)
        assert statuses[-1] == 0x0000
    finally:
        assoc.release()


def test_answer_cut_at_the_find_limit(listener: Any, many_studies: list[str],
                                      monkeypatch: pytest.MonkeyPatch,
                                      caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setattr(listener.services.archive, "find_limit", 50)
    assoc = _associate(listener)
    try:
        with caplog.at_level(logging.WARNING, logger="pacs.scp.find"):
            matches, statuses = _find(assoc, _identifier())
    finally:
        assoc.release()
    _check_matches(matches, many_studies[:50])
    assert statuses == [0xFF00] * 50 + [0x0000]
    assert "C-FIND answer cut at 50 matches (PACS_FIND_LIMIT)" in caplog.text


@pytest.mark.parametrize("syntax", [ExplicitVRLittleEndian, ImplicitVRLittleEndian],
                         ids=["explicit", "implicit"])
def test_plain_identifier_is_read_from_its_bytes(listener: Any, many_studies: list[str],
                                                 monkeypatch: pytest.MonkeyPatch,
                                                 syntax: str) -> None:
    """A viewer's query in either uncompressed syntax is answered without pydicom decoding
    its identifier (pacs.identifier.query_from_bytes), with the same matches; one with a
    sequence still is, and still answered."""
    decoded: list[Any] = []
    original = find_module.to_query
    monkeypatch.setattr(find_module, "to_query",
                        lambda identifier, model: decoded.append(model) or original(
                            identifier, model))
    ae = AE(ae_title=scu.SCU_TITLE)
    ae.add_requested_context(FIND, [syntax])
    ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = 30
    assoc = ae.associate(listener.host, listener.port, ae_title=listener.ae_title)
    assert assoc.is_established
    try:
        assert assoc.accepted_contexts[0].transfer_syntax[0] == syntax
        matches, statuses = _find(assoc, _identifier(PatientID="BATCH3"))
        assert [m.StudyInstanceUID for m in matches] == many_studies[3::7]
        assert statuses[-1] == 0x0000
        assert decoded == []
        with_sequence = _identifier(PatientID="BATCH3")
        with_sequence.ProcedureCodeSequence = []
        matches, statuses = _find(assoc, with_sequence)
        assert [m.StudyInstanceUID for m in matches] == many_studies[3::7]
        assert statuses[-1] == 0x0000
        assert decoded == [FIND]
    finally:
        assoc.release()
