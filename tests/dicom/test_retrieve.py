"""Query/Retrieve C-MOVE and C-GET over real associations (PS3.4 C.4.2, C.4.3).

C-MOVE sends to a pynetdicom Storage SCP started by the test and registered as a known AE;
C-GET receives on the requesting association (SCP role negotiated with SCP/SCU Role
Selection). Each object arrives with its SOP Instance UID, in its stored transfer syntax.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from pydicom import dcmread
from pydicom.uid import (
    CTImageStorage,
    JPEGBaseline8Bit,
    SecondaryCaptureImageStorage,
)

from tests.dicom import scu
from tests.support.data import StudySpec, make_study

JPEG_FILE = "SC_rgb_jpeg_dcmtk.dcm"
GET_STORAGE = [
    (CTImageStorage, scu.UNCOMPRESSED),
    (SecondaryCaptureImageStorage, [JPEGBaseline8Bit]),
]


@dataclass
class Stored:
    listener: Any
    study: str = ""
    series: dict[str, list[str]] = field(default_factory=dict)  # series UID → SOP UIDs
    other_study: str = ""
    other_sops: list[str] = field(default_factory=list)
    jpeg_study: str = ""
    jpeg_sop: str = ""
    jpeg_pixels: bytes = b""

    @property
    def study_sops(self) -> list[str]:
        return [uid for uids in self.series.values() for uid in uids]


@pytest.fixture(scope="module")
def stored(module_listener: Any, tmp_path_factory: pytest.TempPathFactory) -> Stored:
    study = make_study(StudySpec(patient_id="PID001", series=2, instances=2))
    other = make_study(StudySpec(patient_id="PID002", patient_name="ROE^RICHARD",
                                 series=1, instances=1))
    assert scu.store_datasets(module_listener, study + other) == [0x0000] * 5
    jpeg = scu.vendor_copy(JPEG_FILE, tmp_path_factory.mktemp("jpeg"))
    assert scu.store_files(module_listener, [jpeg]) == [0x0000]
    original = dcmread(jpeg)
    result = Stored(module_listener, study=study[0].StudyInstanceUID,
                    other_study=other[0].StudyInstanceUID,
                    other_sops=[str(d.SOPInstanceUID) for d in other],
                    jpeg_study=str(original.StudyInstanceUID),
                    jpeg_sop=str(original.SOPInstanceUID), jpeg_pixels=original.PixelData)
    for ds in study:
        result.series.setdefault(str(ds.SeriesInstanceUID), []).append(str(ds.SOPInstanceUID))
    return result


@pytest.fixture(scope="module")
def storage_scp(stored: Stored) -> Iterator[scu.StorageSCP]:
    """A Storage SCP registered with the archive as a known AE (one per module: stopping a
    pynetdicom server waits for its 0.5 s poll)."""
    title = "DEST"
    with scu.storage_scp(title, [CTImageStorage, SecondaryCaptureImageStorage]) as scp:
        stored.listener.services.aes.add(title, scp.host, scp.port)
        yield scp


@pytest.fixture(scope="module")
def peer(stored: Stored) -> Iterator[scu.Peer]:
    """One association for the module's C-MOVE and C-GET requests."""
    with scu.Peer(stored.listener, storage=GET_STORAGE) as p:
        yield p


@pytest.fixture
def destination(storage_scp: scu.StorageSCP) -> scu.StorageSCP:
    """The module's Storage SCP, with nothing received yet."""
    storage_scp.received.clear()
    return storage_scp


def assert_completed(result: scu.RetrieveResult, count: int) -> None:
    assert f"0x{result.final:04X}" == "0x0000"
    assert all(s == 0xFF00 for s in result.statuses[:-1])
    assert result.count("NumberOfCompletedSuboperations") == count
    assert result.count("NumberOfFailedSuboperations") in (0, None)
    assert result.count("NumberOfWarningSuboperations") in (0, None)


# -- C-MOVE ----------------------------------------------------------------------------

@pytest.mark.parametrize("model", ["patient", "study"])
def test_move_study(stored: Stored, peer: scu.Peer, destination: scu.StorageSCP,
                    model: str) -> None:
    keys = {"StudyInstanceUID": stored.study}
    if model == "patient":
        keys["PatientID"] = "PID001"
    result = peer.move(scu.query("STUDY", **keys), destination.ae_title, model)
    assert_completed(result, 4)
    assert sorted(destination.uids()) == sorted(stored.study_sops)


def test_move_sub_operations_name_the_move_originator(stored: Stored,
                                                      destination: scu.StorageSCP) -> None:
    """PS3.7 9.3.1.1: each C-STORE sub-operation carries the AE Title (and Message ID) of
    the AE that invoked the C-MOVE, so the destination can tell whose request it serves."""
    result = scu.move(stored.listener, scu.query("STUDY", StudyInstanceUID=stored.other_study),
                      destination.ae_title, ae_title="ORIGINATOR")
    assert_completed(result, 1)
    assert [r.move_originator for r in destination.received] == ["ORIGINATOR"]


def test_move_series(stored: Stored, peer: scu.Peer, destination: scu.StorageSCP) -> None:
    series_uid, sops = next(iter(stored.series.items()))
    result = peer.move(scu.query("SERIES", StudyInstanceUID=stored.study,
                                 SeriesInstanceUID=series_uid), destination.ae_title)
    assert_completed(result, 2)
    assert sorted(destination.uids()) == sorted(sops)


def test_move_images(stored: Stored, peer: scu.Peer, destination: scu.StorageSCP) -> None:
    series_uid, sops = list(stored.series.items())[1]
    result = peer.move(scu.query("IMAGE", StudyInstanceUID=stored.study,
                                 SeriesInstanceUID=series_uid, SOPInstanceUID=sops[1]),
                       destination.ae_title)
    assert_completed(result, 1)
    assert destination.uids() == [sops[1]]


def test_move_list_of_studies(stored: Stored, peer: scu.Peer,
                              destination: scu.StorageSCP) -> None:
    result = peer.move(scu.query(
        "STUDY", StudyInstanceUID=f"{stored.study}\\{stored.other_study}"),
        destination.ae_title)
    assert_completed(result, 5)
    assert sorted(destination.uids()) == sorted(stored.study_sops + stored.other_sops)


def test_move_compressed_object_keeps_its_transfer_syntax(
        stored: Stored, peer: scu.Peer, destination: scu.StorageSCP) -> None:
    result = peer.move(scu.query("IMAGE", StudyInstanceUID=stored.jpeg_study,
                                 SeriesInstanceUID="", SOPInstanceUID=stored.jpeg_sop),
                       destination.ae_title)
    assert_completed(result, 1)
    [item] = destination.received
    assert item.sop_instance_uid == stored.jpeg_sop
    assert item.transfer_syntax == JPEGBaseline8Bit
    assert item.dataset.PixelData == stored.jpeg_pixels


def test_move_without_matches_completes_with_nothing(peer: scu.Peer,
                                                     destination: scu.StorageSCP) -> None:
    result = peer.move(scu.query("STUDY", StudyInstanceUID="1.2.3.4.5.6.7"),
                       destination.ae_title)
    assert f"0x{result.final:04X}" == "0x0000"
    assert result.count("NumberOfCompletedSuboperations") in (0, None)
    assert destination.uids() == []


def test_move_to_unknown_destination_is_refused(stored: Stored, peer: scu.Peer) -> None:
    result = peer.move(scu.query("STUDY", StudyInstanceUID=stored.study), "NOSUCHAE")
    assert f"0x{result.final:04X}" == "0xA801"
    assert scu.echo(stored.listener) == 0x0000


# -- C-GET -----------------------------------------------------------------------------

@pytest.mark.parametrize("model", ["patient", "study"])
def test_get_study(stored: Stored, peer: scu.Peer, model: str) -> None:
    keys = {"StudyInstanceUID": stored.study}
    if model == "patient":
        keys["PatientID"] = "PID001"
    result = peer.get(scu.query("STUDY", **keys), model)
    assert_completed(result, 4)
    assert sorted(r.sop_instance_uid for r in result.received) == sorted(stored.study_sops)


def test_get_compressed_image_in_its_stored_transfer_syntax(stored: Stored,
                                                           peer: scu.Peer) -> None:
    result = peer.get(scu.query("IMAGE", StudyInstanceUID=stored.jpeg_study,
                                SeriesInstanceUID="", SOPInstanceUID=stored.jpeg_sop))
    assert_completed(result, 1)
    [item] = result.received
    assert item.sop_instance_uid == stored.jpeg_sop
    assert item.sop_class_uid == SecondaryCaptureImageStorage
    assert item.transfer_syntax == JPEGBaseline8Bit
    assert item.dataset.PixelData == stored.jpeg_pixels


def test_get_images_by_uid_list(stored: Stored, peer: scu.Peer) -> None:
    wanted = [stored.study_sops[0], stored.other_sops[0], stored.jpeg_sop]
    result = peer.get(scu.query("IMAGE", SOPInstanceUID="\\".join(wanted)))
    assert_completed(result, 3)
    assert sorted(r.sop_instance_uid for r in result.received) == sorted(wanted)


# -- audit -----------------------------------------------------------------------------

def test_retrieves_are_audited(stored: Stored, destination: scu.StorageSCP) -> None:
    moved = scu.move(stored.listener, scu.query("STUDY", StudyInstanceUID=stored.study),
                     destination.ae_title, ae_title="AUDITMOVE")
    assert moved.final == 0x0000
    got = scu.get(stored.listener, scu.query("STUDY", StudyInstanceUID=stored.other_study),
                  GET_STORAGE, ae_title="AUDITGET")
    assert got.final == 0x0000

    audit = stored.listener.services.audit
    audit.flush()
    moves = [e for e in audit.events(action="move") if e.calling_ae == "AUDITMOVE"]
    gets = [e for e in audit.events(action="get") if e.calling_ae == "AUDITGET"]
    assert len(moves) == 1 and len(gets) == 1
    assert moves[0].study_uid == stored.study
    assert destination.ae_title in moves[0].detail
    assert gets[0].study_uid == stored.other_study
    for event in (moves[0], gets[0]):
        assert event.channel == "dimse" and event.called_ae == "PACS"
