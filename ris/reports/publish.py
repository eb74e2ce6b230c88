"""Where a signed report goes: an SR in the study, an ORU^R01 message, a PDF."""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path

from pydicom.dataset import Dataset
from pydicom.uid import generate_uid

from ris.reports.oru import OruContent
from ris.reports.pdf import render_pdf
from ris.reports.settings import ReportSettings
from ris.reports.sr import STUDY_KEYS, SignedText, build_sr
from ris.reports.views import ReportView
from storage.archive import Archive
from storage.index.query import Level, Query
from storage.origin import Origin

log = logging.getLogger(__name__)


def find_study(archive: Archive, study_uid: str, origin: Origin) -> Dataset | None:
    """The study's patient and study attributes, from the index (audited as a query)."""
    query = Query(Level.STUDY, {"StudyInstanceUID": study_uid}, return_keys=STUDY_KEYS,
                  limit=1)
    match = next(iter(archive.find(query, origin)), None)
    return match.to_dataset() if match is not None else None


def store_sr(archive: Archive, view: ReportView, study: Dataset, settings: ReportSettings,
             origin: Origin) -> tuple[str, str]:
    """Archive the SR of the report's current signed version through the ingest path.

    Returns (series UID, SOP instance UID). The previous version, if any, is named as the
    predecessor document.
    """
    assert view.signed_at is not None
    series_uid = view.sr_series_uid or generate_uid()
    predecessor = (series_uid, view.sr_instance_uid) if view.sr_instance_uid else None
    ds = build_sr(
        study, study_uid=view.study_uid, series_uid=series_uid,
        instance_number=1 + len(view.addenda),
        report=SignedText(view.text, view.signer, view.signed_at),
        addenda=[SignedText(a.text, a.signer, a.signed_at) for a in view.addenda],
        institution=settings.institution, predecessor=predecessor)
    with tempfile.TemporaryDirectory(prefix="report-sr-") as tmp:
        path = Path(tmp) / "sr.dcm"
        ds.save_as(path, enforce_file_format=True)
        archive.store(path, origin)
    return series_uid, str(ds.SOPInstanceUID)


def oru_content(view: ReportView, study: Dataset) -> OruContent:
    assert view.signed_at is not None
    return OruContent(
        report_id=view.id, patient_id=str(study.get("PatientID", "")),
        patient_name=str(study.get("PatientName", "")),
        birth_date=str(study.get("PatientBirthDate", "")), sex=str(study.get("PatientSex", "")),
        accession_number=view.accession_number, study_uid=view.study_uid,
        study_description=str(study.get("StudyDescription", "")),
        study_datetime=f"{study.get('StudyDate', '')}{study.get('StudyTime', '')}"[:14],
        status="C" if view.addenda else "F", signer=view.signer, signed_at=view.signed_at,
        text=view.text,
        addenda=tuple((a.text, a.signer, a.signed_at) for a in view.addenda))


def _date(value: str) -> str:
    return f"{value[:4]}-{value[4:6]}-{value[6:8]}" if len(value) == 8 else value


def report_pdf(view: ReportView, study: Dataset | None, settings: ReportSettings,
               key_id: str) -> bytes:
    study = study or Dataset()
    details = [
        ("Patient", str(study.get("PatientName", "")).replace("^", " ").strip()),
        ("Patient ID", str(study.get("PatientID", ""))),
        ("Birth date / sex", f"{_date(str(study.get('PatientBirthDate', '')))} "
                             f"{study.get('PatientSex', '')}".strip()),
        ("Study", str(study.get("StudyDescription", ""))),
        ("Study date", _date(str(study.get("StudyDate", "")))),
        ("Accession number", view.accession_number),
        ("Study Instance UID", view.study_uid),
    ]
    if view.signed_at is not None:
        signature = [("Signed by", view.signer),
                     ("Signed at", f"{view.signed_at:%Y-%m-%d %H:%M:%S} UTC"),
                     ("SHA-256", view.digest), ("Ed25519 key", view.key_id or key_id),
                     ("Verify", f"/api/reports/{view.id}/verify")]
    else:
        signature = [("Not signed", "this report is a draft and may still change")]
    return render_pdf(
        title="Radiology report", institution=settings.institution, details=details,
        text=view.text, status=view.status.value, signature=signature,
        addenda=[(a.signer, a.signed_at, a.text) for a in view.addenda],
        font=settings.font_path)
