"""Radiology reports: life cycle, signatures, SR, PDF and HL7 ORU output."""

from ris.reports.errors import InvalidReport
from ris.reports.models import Report, ReportAddendum, ReportStatus
from ris.reports.service import ReportService, StatusListener
from ris.reports.settings import ReportSettings
from ris.reports.views import AddendumView, ReportView, Verification

__all__ = [
    "AddendumView",
    "InvalidReport",
    "Report",
    "ReportAddendum",
    "ReportService",
    "ReportSettings",
    "ReportStatus",
    "ReportView",
    "StatusListener",
    "Verification",
]
