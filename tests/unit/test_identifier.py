"""C-FIND identifiers read from their bytes (pacs.identifier.query_from_bytes).

The byte reader must give exactly the :class:`Query` that pydicom's decoding and
:func:`pacs.identifier.to_query` give, in Implicit and Explicit VR Little Endian, and
hand back (``None``) anything it does not read itself, which then takes pydicom's path.
"""

from __future__ import annotations

from io import BytesIO
from typing import Any

import pytest
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence
from pynetdicom.dsutils import decode, encode
from pynetdicom.sop_class import (
    PatientRootQueryRetrieveInformationModelFind,
    StudyRootQueryRetrieveInformationModelFind,
)

from pacs.identifier import query_from_bytes, to_query
from storage.errors import InvalidQuery

STUDY = StudyRootQueryRetrieveInformationModelFind
PATIENT = PatientRootQueryRetrieveInformationModelFind
VIEWER_KEYS = ["PatientName", "PatientID", "PatientBirthDate", "PatientSex", "StudyInstanceUID",
               "StudyDate", "StudyTime", "AccessionNumber", "StudyID", "StudyDescription",
               "ReferringPhysicianName", "ModalitiesInStudy", "NumberOfStudyRelatedSeries",
               "NumberOfStudyRelatedInstances"]


def _ds(level: str | None = "STUDY", **keys: Any) -> Dataset:
    ds = Dataset()
    if level is not None:
        ds.QueryRetrieveLevel = level
    for keyword, value in keys.items():
        setattr(ds, keyword, value)
    return ds


def _viewer(**matching: Any) -> Dataset:
    return _ds(**({k: "" for k in VIEWER_KEYS} | matching))


PLAIN = {
    "patient-id": _viewer(PatientID="PAT-0042"),
    "name-wildcard": _viewer(PatientName="SMITH^J*"),
    "date-range": _viewer(StudyDate="20261024-20261123"),
    "open-range": _viewer(StudyDate="-20250115", StudyTime="0800-"),
    "uid-list": _viewer(StudyInstanceUID=["1.2.3.4", "1.2.3.5"]),
    "modalities": _viewer(ModalitiesInStudy=["CT", "MR"]),
    "padded-and-spaces": _viewer(PatientID=" A B ", AccessionNumber="ACC_1?",
                                 StudyDescription="HEAD \\ NECK"),
    "single-valued-backslash": _ds(PatientComments="a\\b "),
    "lower-case-level": _ds(level="series", SeriesInstanceUID="", Modality="CT"),
    "image-level": _ds(level="IMAGE", SOPInstanceUID="1.2", InstanceNumber=None),
    "retrieve-aet": _ds(StudyInstanceUID="", RetrieveAETitle=""),
    "charset-default": _viewer(SpecificCharacterSet="ISO_IR 100", PatientName="DOE^J*"),
}
NOT_PLAIN = {
    "sequence": _ds(StudyInstanceUID="",
                    ProcedureCodeSequence=Sequence([_ds(level=None, CodeValue="X")])),
    "non-ascii": _viewer(SpecificCharacterSet="ISO_IR 192", PatientName="MÜLLER^*"),
    "person-name-groups": _ds(PatientName="Yamada^Tarou=山田^太郎"),
    "number-value": _ds(level="SERIES", SeriesNumber="3"),
    "binary-vr": _ds(level="IMAGE", SOPInstanceUID="", Rows=512),
}


def _both(ds: Dataset, implicit: bool, model: str = STUDY) -> tuple[Any, Any]:
    data = encode(ds, implicit, True)
    assert data is not None
    return query_from_bytes(data, implicit, True, model), to_query(
        decode(BytesIO(data), implicit, True), model)


@pytest.mark.parametrize("implicit", [True, False], ids=["implicit", "explicit"])
@pytest.mark.parametrize("name", sorted(PLAIN))
def test_plain_identifier_read_from_bytes_as_pydicom_reads_it(name: str, implicit: bool) -> None:
    fast, slow = _both(PLAIN[name], implicit)
    assert fast is not None, "a plain identifier should not need pydicom"
    assert fast == slow


@pytest.mark.parametrize("implicit", [True, False], ids=["implicit", "explicit"])
@pytest.mark.parametrize("name", sorted(NOT_PLAIN))
def test_other_identifiers_are_left_to_pydicom(name: str, implicit: bool) -> None:
    fast, _slow = _both(NOT_PLAIN[name], implicit)
    assert fast is None


def test_private_and_big_endian_are_left_to_pydicom() -> None:
    ds = _viewer()
    ds.add_new(0x00091010, "LO", "private")
    assert query_from_bytes(encode(ds, False, True), False, True, STUDY) is None  # type: ignore[arg-type]
    assert query_from_bytes(encode(_viewer(), False, False), False, False, STUDY) is None  # type: ignore[arg-type]


def test_elements_out_of_order_are_left_to_pydicom() -> None:
    a = encode(_ds(level=None, PatientID="A"), True, True)
    b = encode(_ds(), True, True)
    assert a is not None and b is not None
    assert query_from_bytes(a + b, True, True, STUDY) is None  # (0010,0020) before (0008,0052)


@pytest.mark.parametrize("implicit", [True, False], ids=["implicit", "explicit"])
@pytest.mark.parametrize(("ds", "model"), [
    (_ds(level=None, PatientID="X"), STUDY),
    (_ds(level="NOPE", PatientID="X"), STUDY),
    (_ds(level="PATIENT", PatientID="X"), STUDY),
])
def test_bad_levels_refused_as_before(ds: Dataset, model: str, implicit: bool) -> None:
    data = encode(ds, implicit, True)
    assert data is not None
    with pytest.raises(InvalidQuery) as fast:
        query_from_bytes(data, implicit, True, model)
    with pytest.raises(InvalidQuery) as slow:
        to_query(decode(BytesIO(data), implicit, True), model)
    assert str(fast.value) == str(slow.value)


def test_patient_root_patient_level() -> None:
    fast, slow = _both(_ds(level="PATIENT", PatientID="P*", PatientName=""), False, PATIENT)
    assert fast is not None and fast == slow
