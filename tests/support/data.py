"""Test data: pydicom's bundled real vendor files, and small generated studies."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from pydicom import dcmread
from pydicom.data import get_testdata_file
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import (
    PYDICOM_IMPLEMENTATION_UID,
    CTImageStorage,
    ExplicitVRLittleEndian,
    generate_uid,
)

REAL_FILES = {
    # pydicom's bundled vendor files (no download needed, distinct SOP Instance UIDs):
    # name -> what it covers
    "CT_small.dcm": "CT, explicit VR little endian",
    "ExplVR_BigEnd.dcm": "explicit VR big endian",
    "image_dfl.dcm": "deflated explicit VR little endian",
    "SC_rgb_jpeg_dcmtk.dcm": "JPEG baseline, RGB",
    "JPGExtended.dcm": "JPEG extended (process 2 and 4)",
    "SC_rgb_jpeg_gdcm.dcm": "JPEG lossless SV1",
    "MR_small_jpeg_ls_lossless.dcm": "JPEG-LS lossless",
    "examples_jpeg2k.dcm": "JPEG 2000 lossless",
    "693_J2KI.dcm": "JPEG 2000",
    "rtdose_rle.dcm": "RLE lossless, multi-frame",
    "examples_palette.dcm": "palette colour",
    "rtplan.dcm": "RT Plan, implicit VR little endian, no pixel data",
    "test-SR.dcm": "structured report",
    "waveform_ecg.dcm": "ECG waveform",
}


def real_file(name: str) -> Path:
    path = get_testdata_file(name)
    if path is None:
        raise FileNotFoundError(name)
    return Path(str(path))


def real_dataset(name: str) -> Dataset:
    return dcmread(real_file(name))


@dataclass
class StudySpec:
    patient_id: str = "P001"
    patient_name: str = "DOE^JANE"
    study_date: str = "20250115"
    study_time: str = "101500"
    accession: str = "A001"
    modality: str = "CT"
    description: str = "CHEST"
    series: int = 1
    instances: int = 2
    study_uid: str = field(default_factory=generate_uid)
    birth_date: str = "19700101"
    sex: str = "F"
    referring: str = "WHO^DR"


def make_instance(spec: StudySpec, series_uid: str, series_number: int, number: int,
                  sop_uid: str | None = None, rows: int = 8, cols: int = 8) -> Dataset:
    """A small valid CT image with the given identity (PS3.3 A.3 basics)."""
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = CTImageStorage
    meta.MediaStorageSOPInstanceUID = sop_uid or generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
    ds = Dataset()
    ds.file_meta = meta
    ds.SpecificCharacterSet = "ISO_IR 192"
    ds.SOPClassUID = CTImageStorage
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.PatientID = spec.patient_id
    ds.PatientName = spec.patient_name
    ds.PatientBirthDate = spec.birth_date
    ds.PatientSex = spec.sex
    ds.StudyInstanceUID = spec.study_uid
    ds.StudyDate = spec.study_date
    ds.StudyTime = spec.study_time
    ds.AccessionNumber = spec.accession
    ds.StudyID = "1"
    ds.StudyDescription = spec.description
    ds.ReferringPhysicianName = spec.referring
    ds.SeriesInstanceUID = series_uid
    ds.SeriesNumber = series_number
    ds.Modality = spec.modality
    ds.InstanceNumber = number
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows, ds.Columns = rows, cols
    ds.BitsAllocated, ds.BitsStored, ds.HighBit = 16, 12, 11
    ds.PixelRepresentation = 0
    ds.PixelData = (np.arange(rows * cols, dtype=np.uint16) * number % 4096).tobytes()
    return ds


def make_study(spec: StudySpec) -> list[Dataset]:
    out = []
    for s in range(1, spec.series + 1):
        series_uid = generate_uid()
        for i in range(1, spec.instances + 1):
            out.append(make_instance(spec, series_uid, s, i))
    return out


def write(ds: Dataset, directory: Path) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{ds.SOPInstanceUID}.dcm"
    ds.save_as(path, enforce_file_format=True)
    return path
