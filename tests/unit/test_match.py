"""A match writes the same bytes and the same DICOM JSON as pydicom would (storage/index/match.py)."""

from __future__ import annotations

from io import BytesIO

import pytest
from pydicom.dataset import Dataset
from pynetdicom.dsutils import decode, encode

from storage.index.match import Match
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
