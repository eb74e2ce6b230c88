"""The report as a DICOM Basic Text SR (PS3.3 A.35.1), so viewers show it with the images.

One new SR instance per signed version: the final report is instance 1 of the report's
SR series, each addendum adds an instance holding the report and every addendum so far,
with Predecessor Documents Sequence (0040,A360) naming the instance it supersedes
(PS3.3 C.17.2.3). Every instance is UTF-8 (Specific Character Set ISO_IR 192) so
Vietnamese text survives.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import PYDICOM_IMPLEMENTATION_UID, ExplicitVRLittleEndian, generate_uid

BASIC_TEXT_SR = "1.2.840.10008.5.1.4.1.1.88.11"
"""Basic Text SR Storage SOP Class UID (PS3.4 B.5)."""
SR_SERIES_NUMBER = 9000

STUDY_KEYS = ("PatientName", "PatientID", "PatientBirthDate", "PatientSex", "StudyDate",
              "StudyTime", "AccessionNumber", "StudyID", "ReferringPhysicianName",
              "StudyDescription")
"""What the SR copies from the study (Patient and General Study modules, PS3.3 C.7.1.1,
C.7.2.1)."""


@dataclass(frozen=True)
class SignedText:
    text: str
    signer: str
    signed_at: datetime


def _code(value: str, scheme: str, meaning: str) -> Dataset:
    item = Dataset()
    item.CodeValue = value
    item.CodingSchemeDesignator = scheme
    item.CodeMeaning = meaning
    return item


def _text_item(concept: Dataset, text: str) -> Dataset:
    item = Dataset()
    item.RelationshipType = "CONTAINS"
    item.ValueType = "TEXT"
    item.ConceptNameCodeSequence = [concept]
    item.TextValue = text
    return item


def build_sr(study: Dataset, *, study_uid: str, series_uid: str, instance_number: int,
             report: SignedText, addenda: list[SignedText], institution: str,
             predecessor: tuple[str, str] | None = None) -> Dataset:
    """The SR dataset of one signed version of a report.

    ``study`` holds the :data:`STUDY_KEYS` of the study (as the archive's C-FIND answers
    them); ``predecessor`` is the (series UID, SOP instance UID) of the previous version.
    """
    sop_uid = generate_uid()
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = BASIC_TEXT_SR
    meta.MediaStorageSOPInstanceUID = sop_uid
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
    ds = Dataset()
    ds.file_meta = meta
    ds.SpecificCharacterSet = "ISO_IR 192"
    ds.SOPClassUID = BASIC_TEXT_SR
    ds.SOPInstanceUID = sop_uid
    for keyword in STUDY_KEYS:
        setattr(ds, keyword, study.get(keyword, "") or "")
    ds.StudyInstanceUID = study_uid
    # SR Document Series (PS3.3 C.17.1)
    ds.Modality = "SR"
    ds.SeriesInstanceUID = series_uid
    ds.SeriesNumber = SR_SERIES_NUMBER
    ds.SeriesDescription = "Radiology report"
    ds.ReferencedPerformedProcedureStepSequence = []
    ds.Manufacturer = "Filmless PACS"
    # SR Document General (PS3.3 C.17.2): signed, so complete and verified
    last = addenda[-1] if addenda else report
    ds.InstanceNumber = instance_number
    ds.ContentDate = last.signed_at.strftime("%Y%m%d")
    ds.ContentTime = last.signed_at.strftime("%H%M%S")
    ds.CompletionFlag = "COMPLETE"
    ds.VerificationFlag = "VERIFIED"
    ds.PreliminaryFlag = "FINAL"
    observers = []
    for signed in [report, *addenda]:
        observer = Dataset()
        observer.VerifyingObserverName = signed.signer
        observer.VerifyingOrganization = institution
        observer.VerificationDateTime = signed.signed_at.strftime("%Y%m%d%H%M%S")
        observer.VerifyingObserverIdentificationCodeSequence = []
        observers.append(observer)
    ds.VerifyingObserverSequence = observers
    ds.PerformedProcedureCodeSequence = []
    if predecessor is not None:
        ref = Dataset()
        ref.StudyInstanceUID = study_uid
        series = Dataset()
        series.SeriesInstanceUID = predecessor[0]
        sop = Dataset()
        sop.ReferencedSOPClassUID = BASIC_TEXT_SR
        sop.ReferencedSOPInstanceUID = predecessor[1]
        series.ReferencedSOPSequence = [sop]
        ref.ReferencedSeriesSequence = [series]
        ds.PredecessorDocumentsSequence = [ref]
    # SR Document Content (PS3.3 C.17.3): a container of text items
    ds.ValueType = "CONTAINER"
    ds.ConceptNameCodeSequence = [_code("18748-4", "LN", "Diagnostic Imaging Report")]
    ds.ContinuityOfContent = "SEPARATE"
    content = [_text_item(_code("121071", "DCM", "Finding"), report.text)]
    for addendum in addenda:
        header = f"Addendum {addendum.signed_at:%Y-%m-%d %H:%M} ({addendum.signer}): "
        content.append(_text_item(_code("121106", "DCM", "Comment"), header + addendum.text))
    ds.ContentSequence = content
    return ds
