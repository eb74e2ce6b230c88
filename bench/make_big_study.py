#!/usr/bin/env python3
"""Write one large CT study (default about 1 GiB) for the streaming-memory benchmark.

Issue 4 asks that memory stays flat while a 1 GB study is streamed over WADO-RS. The
harness's corpora have no study that large, so this writes N CT slices of 512x512 16-bit
(~0.5 MiB each) with random-walk pixel data, one series, fresh UIDs, Explicit VR Little Endian.

  make_big_study.py --out DIR [--mib 1024]     prints one JSON line: study UID, files, bytes
"""
from __future__ import annotations

import argparse
import json
import os

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", required=True)
    ap.add_argument("--mib", type=int, default=1024)
    a = ap.parse_args()
    os.makedirs(a.out, exist_ok=True)
    marker = os.path.join(a.out, "study.json")
    if os.path.exists(marker):
        print(open(marker).read().strip())
        return
    rng = np.random.default_rng(7)
    study, series = generate_uid(), generate_uid()
    per = 512 * 512 * 2
    n = (a.mib * 2**20) // per
    total = 0
    for i in range(n):
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = CTImageStorage
        meta.MediaStorageSOPInstanceUID = generate_uid()
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds = Dataset()
        ds.file_meta = meta
        ds.SOPClassUID, ds.SOPInstanceUID = CTImageStorage, meta.MediaStorageSOPInstanceUID
        ds.PatientName, ds.PatientID, ds.PatientBirthDate, ds.PatientSex = "BIG^STUDY", "BIG0001", "19700101", "O"
        ds.StudyInstanceUID, ds.SeriesInstanceUID = study, series
        ds.StudyDate, ds.StudyTime, ds.AccessionNumber, ds.StudyID = "20260101", "120000", "BIG0001", "1"
        ds.Modality, ds.SeriesNumber, ds.InstanceNumber = "CT", 1, i + 1
        ds.ImagePositionPatient, ds.ImageOrientationPatient = [0, 0, i * 0.5], [1, 0, 0, 0, 1, 0]
        ds.PixelSpacing, ds.SliceThickness = [0.7, 0.7], 0.5
        ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
        ds.Rows = ds.Columns = 512
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
        ds.RescaleIntercept, ds.RescaleSlope = -1024, 1
        ds.PixelData = rng.integers(0, 4096, (512, 512), dtype=np.uint16).tobytes()
        path = os.path.join(a.out, f"{i:05d}.dcm")
        ds.save_as(path, enforce_file_format=True)
        total += os.path.getsize(path)
    info = {"study": study, "series": series, "files": n, "bytes": total}
    with open(marker, "w") as fh:
        fh.write(json.dumps(info) + "\n")
    print(json.dumps(info))


if __name__ == "__main__":
    main()
