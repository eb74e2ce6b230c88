"""A match writes the same bytes and the same DICOM JSON as pydicom would (storage/index/match.py)."""

from __future__ import annotations

from io import BytesIO

import pytest
from pydicom.dataset import Dataset
from pynetdicom.dsutils import decode, encode

from storage.index.match import Match, RowMatch, RowShape
from storage.index.query import Level

HEADER_SQ = {"vr": "SQ", "Value": [{"00081150": {"vr": "UI", "Value": ["1.2.840.10008.5.1.4.1.1.2"]}}]}


def _match() -> Match:
    return Match(Level.IMAGE, [
        (0x00100010, "PN", "Nguyễn^Văn An"),           # non-ASCII: UTF-8 declared
        (0x00100020, "LO", "P001"),
        (0x0020000D, "UI", "1.2.3.4"),                 # odd length: NUL padding
        (0x00080061, "CS", ["CT", "MR"]),              # multi-valued
        (0x00201208, "IS", 12),                        # number from a counter column
        (0x00280010, "US", 512),                       # binary VR
        (0x00081030, "LO", None),                      # universal key with no value
        (0x00081190, "UR", "http://x/studies/1.2.3"),  # long-length explicit VR
    ], {0x00081140: HEADER_SQ})


@pytest.mark.parametrize(("implicit", "little"), [(True, True), (False, True), (False, False)])
def test_encode_equals_pydicom(implicit: bool, little: bool) -> None:
    match = _match()
    ours = match.encode(implicit, little)
    reference = encode(match.to_dataset(), implicit, little)
    assert ours == reference
    back = decode(BytesIO(ours), implicit, little)
    assert str(back.PatientName) == "Nguyễn^Văn An"
    assert back.SpecificCharacterSet == "ISO_IR 192"
    assert back.Rows == 512 and back.QueryRetrieveLevel == "IMAGE"
    assert back.ReferencedImageSequence[0].ReferencedSOPClassUID == "1.2.840.10008.5.1.4.1.1.2"


def test_json_equals_pydicom() -> None:
    match = _match()
    reference = match.to_dataset()
    del reference.QueryRetrieveLevel
    del reference.SpecificCharacterSet
    expected = reference.to_json_dict()
    assert match.to_json() == {tag: expected[tag] for tag in sorted(expected)}
    assert list(match.to_json()) == sorted(match.to_json())


def test_ascii_match_declares_no_character_set() -> None:
    match = Match(Level.STUDY, [(0x00100010, "PN", "DOE^JOHN")])
    assert b"ISO_IR" not in match.encode(True, True)
    assert "SpecificCharacterSet" not in match.to_dataset()


def test_set_replaces_a_value() -> None:
    match = Match(Level.STUDY, [(0x00080054, "AE", "")])
    match.set(0x00080054, "AE", "PACS")
    assert match.get(0x00080054) == "PACS"
    assert Dataset.from_json(match.to_json()).RetrieveAETitle == "PACS"


ROW_KEYS = [(0x00080020, "DA", False), (0x00080061, "CS", True), (0x00100010, "PN", False),
            (0x0020000D, "UI", False), (0x00201206, "IS", False), (0x00081030, "LO", False)]


@pytest.mark.parametrize("name", ["DOE^JOHN", "Nguyễn^Văn An"])
@pytest.mark.parametrize(("implicit", "little"), [(True, True), (False, True), (False, False)])
def test_row_match_encodes_as_pydicom(name: str, implicit: bool, little: bool) -> None:
    """A match encoded straight from its index row equals pydicom's encoding of it,
    non-ASCII names (UTF-8 declared) and ModalitiesInStudy as stored included."""
    row = ("20261123", "\\CT\\MR\\", name, "1.2.3.4", 3, None)
    match = RowMatch(RowShape(Level.STUDY, ROW_KEYS), row)
    reference = encode(match.to_dataset(), implicit, little)
    assert RowMatch(RowShape(Level.STUDY, ROW_KEYS), row).encode(implicit, little) == reference
    back = decode(BytesIO(reference), implicit, little)
    assert back.ModalitiesInStudy == ["CT", "MR"] and back.NumberOfStudyRelatedSeries == 3
    assert ("SpecificCharacterSet" in back) is (not name.isascii())


def test_row_match_set_and_json_as_a_match() -> None:
    row = ("20261123", "\\CT\\", "DOE^JOHN", "1.2.3.4", 3, "")
    shape = RowShape(Level.STUDY, ROW_KEYS)
    plain = Match(Level.STUDY, [(tag, vr, ["CT"] if mod else value)
                                for (tag, vr, mod), value in zip(ROW_KEYS, row, strict=True)])
    assert RowMatch(shape, row).to_json() == plain.to_json()
    fast, slow = RowMatch(shape, row), plain
    for match in (fast, slow):
        match.set(0x00080054, "AE", "PACS")
    assert fast.encode(True, True) == slow.encode(True, True)
    assert fast.get(0x00080054) == "PACS"


@pytest.mark.parametrize("implicit", [True, False], ids=["implicit", "explicit"])
def test_empty_sequence_key_encodes_in_either_syntax(implicit: bool) -> None:
    """A requested sequence absent from the header is returned empty; in Explicit VR its
    SQ head has the reserved bytes and 4-byte length (PS3.5 7.1.2), else the peer misreads
    every element after it."""
    match = Match(Level.STUDY, [(0x0020000D, "UI", "1.2.3"), (0x00081032, "SQ", None),
                                (0x00100020, "LO", "PID")])
    ds = decode(BytesIO(match.encode(implicit, True)), implicit, True)
    assert ds.StudyInstanceUID == "1.2.3"
    assert ds.PatientID == "PID"
    assert len(ds.ProcedureCodeSequence) == 0
