"""Transfer syntax negotiation: the requestor's preference is honoured.

pynetdicom on its own accepts the first syntax of the *acceptor's* list that a context
proposes (Implicit VR Little Endian first), so storescu had to convert Explicit VR files
to Implicit VR and the archive kept them without their VRs
(:func:`pacs.scp.acceptance.prefer_requested_syntaxes`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from pydicom import dcmread
from pydicom.uid import (
    DeflatedExplicitVRLittleEndian,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    JPEGBaseline8Bit,
)
from pynetdicom.sop_class import CTImageStorage, MRImageStorage

from tests.dicom import scu
from tests.dicom.conftest import ServedListener
from tests.support.data import StudySpec, make_study, write
from tests.support.dcmtk import run


def _accepted(assoc: Any) -> dict[int, str]:
    return {cx.context_id: str(cx.transfer_syntax[0]) for cx in assoc.accepted_contexts}


@pytest.mark.parametrize("proposed", [
    [ExplicitVRLittleEndian, ImplicitVRLittleEndian],
    [ImplicitVRLittleEndian, ExplicitVRLittleEndian],
    [ExplicitVRBigEndian, ExplicitVRLittleEndian, ImplicitVRLittleEndian],
    [DeflatedExplicitVRLittleEndian, ImplicitVRLittleEndian],
])
def test_the_first_proposed_syntax_we_support_is_accepted(sqlite_listener: Any,
                                                          proposed: list[str]) -> None:
    with scu.association(sqlite_listener, [(CTImageStorage, proposed)]) as assoc:
        assert list(_accepted(assoc).values()) == [proposed[0]]


def test_contexts_of_one_abstract_syntax_each_get_their_own_first_choice(
        sqlite_listener: Any) -> None:
    # storescu's shape: a compressed syntax alone, then the uncompressed ones together;
    # another abstract syntax with the opposite order is not affected by the first.
    contexts = [(CTImageStorage, [JPEGBaseline8Bit]),
                (CTImageStorage, [ExplicitVRLittleEndian, ImplicitVRLittleEndian]),
                (MRImageStorage, [ImplicitVRLittleEndian, ExplicitVRLittleEndian])]
    with scu.association(sqlite_listener, contexts) as assoc:
        assert _accepted(assoc) == {1: JPEGBaseline8Bit, 3: ExplicitVRLittleEndian,
                                    5: ImplicitVRLittleEndian}
    # the next association starts from the listener's own order again
    with scu.association(sqlite_listener, [(MRImageStorage, [ExplicitVRLittleEndian,
                                                            ImplicitVRLittleEndian])]) as assoc:
        assert list(_accepted(assoc).values()) == [ExplicitVRLittleEndian]


def test_reordering_for_one_association_leaves_the_listeners_contexts_alone(
        served: ServedListener) -> None:
    """The contexts are shared by every association (none is copied per association):
    the requestor's order goes into copies, so a concurrent association never sees it."""
    def orders() -> list[list[str]]:
        return [list(cx.transfer_syntax) for cx in served.server.contexts]

    before = orders()
    mr = next(cx for cx in served.server.contexts if cx.abstract_syntax == MRImageStorage)
    assert mr.transfer_syntax[0] != DeflatedExplicitVRLittleEndian
    with scu.association(served, [(MRImageStorage, [DeflatedExplicitVRLittleEndian])]) as assoc:
        assert list(_accepted(assoc).values()) == [DeflatedExplicitVRLittleEndian]
        assert orders() == before
    assert orders() == before


@pytest.mark.dcmtk
def test_storescu_explicit_vr_files_are_archived_as_sent(sqlite_listener: Any,
                                                        tmp_path: Path) -> None:
    """storescu proposes Explicit VR Little Endian first: the file needs no conversion and
    the archived object is the one sent, byte for byte after its File Meta Information."""
    sent = []
    for ds in make_study(StudySpec(series=1, instances=2)):
        ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
        sent.append(write(ds, tmp_path / "in"))
    # The benchmark's options: a JPEG context, and the uncompressed syntaxes in one context.
    result = run("storescu", "-v", "-xy", "-R", "+sd", "-aec", sqlite_listener.ae_title,
                 sqlite_listener.host, str(sqlite_listener.port), str(tmp_path / "in"))
    assert result.returncode == 0, result.stderr
    assert "-> Little Endian Implicit" not in result.stdout + result.stderr
    for path in sent:
        original = dcmread(path)
        [data] = scu.stored_objects(sqlite_listener.services, original.SOPInstanceUID)
        stored = scu.read_bytes(data)
        assert stored.file_meta.TransferSyntaxUID == ExplicitVRLittleEndian
        assert data[-len(original.PixelData):] == original.PixelData
        assert stored == original
