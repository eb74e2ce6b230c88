"""The report service: draft → preliminary → final (signed) → amended (signed addenda).

A final report is immutable: its text, signer and time are signed (SHA-256 digest and
Ed25519 signature, :mod:`ris.reports.signing`), and later changes are addenda, each signed
and chained to the report's digest. Every read and change is audited. After a signature
the report is published: listeners (``on_status_change``) are told, a Basic Text SR of the
version goes into the study through the archive's ingest path, and an ORU^R01 is queued
for the configured receiver. Publishing failures are logged and never undo a signature.

Signing user: the authenticated user of the request (``Origin.username``). Until HTTP
authentication exists, a request without one may name its ``signer`` explicitly; that is
allowed only while ``ReportSettings.allow_body_signer`` is true (authentication off).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from ris.reports import publish
from ris.reports.errors import InvalidReport
from ris.reports.models import Report, ReportAddendum, ReportStatus
from ris.reports.oru import OruSender, build_oru
from ris.reports.settings import ReportSettings
from ris.reports.signing import ReportSigner
from ris.reports.views import (
    PartCheck,
    ReportView,
    Verification,
    addendum_content,
    report_content,
)
from storage.archive import Archive
from storage.audit import AuditLog, append_events, event_values, utcnow
from storage.errors import Conflict, NotAuthorised, NotFound, PacsError
from storage.index.database import Database
from storage.origin import Origin

log = logging.getLogger(__name__)

StatusListener = Callable[[str, str, ReportStatus], None]
"""``listener(study_uid, accession_number, status)``, called after each status change."""

EDITABLE = (ReportStatus.DRAFT, ReportStatus.PRELIMINARY)
SIGNED = (ReportStatus.FINAL, ReportStatus.AMENDED)
MAX_TEXT = 100_000


def _text(text: str) -> str:
    if len(text) > MAX_TEXT:
        raise InvalidReport(f"report text is limited to {MAX_TEXT} characters")
    return text


class ReportService:
    """Create, edit, sign, amend, verify and export radiology reports."""

    def __init__(self, db: Database, archive: Archive, audit: AuditLog,
                 settings: ReportSettings) -> None:
        self._db = db
        self._archive = archive
        self._audit = audit
        self.settings = settings
        self.signer = ReportSigner(settings.signing_key_path)
        self.on_status_change: list[StatusListener] = []
        self._oru: OruSender | None = None
        if settings.hl7_oru_host and settings.hl7_oru_port:
            self._oru = OruSender(settings.hl7_oru_host, settings.hl7_oru_port,
                                  self._oru_outcome, attempts=settings.hl7_oru_attempts,
                                  first_delay=settings.hl7_oru_retry_delay)

    # -- reading ----------------------------------------------------------------------------
    def _row(self, s: Session, report_id: int, *, lock: bool = False) -> Report:
        stmt = select(Report).where(Report.id == report_id)
        row = s.scalar(stmt.with_for_update() if lock else stmt)
        if row is None:
            raise NotFound(f"report {report_id} does not exist")
        return row

    def _view(self, s: Session, row: Report) -> ReportView:
        addenda = list(s.scalars(select(ReportAddendum).where(
            ReportAddendum.report_fk == row.id).order_by(ReportAddendum.id)))
        return ReportView.of(row, addenda)

    def _load(self, report_id: int) -> ReportView:
        with self._db.read() as s:
            return self._view(s, self._row(s, report_id))

    def get(self, report_id: int, origin: Origin, *, action: str = "report-view") -> ReportView:
        """One report with its addenda; the read is audited."""
        view = self._load(report_id)
        self._audit.record(origin, action, "ok", study_uid=view.study_uid,
                           detail={"report": report_id})
        return view

    def list(self, origin: Origin, *, study_uid: str | None = None,
             accession_number: str | None = None, status: ReportStatus | None = None,
             limit: int = 100, offset: int = 0) -> list[ReportView]:
        """Reports matching every given filter, newest first; the query is audited."""
        stmt = select(Report).order_by(Report.id.desc()).limit(min(limit, 1000)).offset(offset)
        if study_uid:
            stmt = stmt.where(Report.study_uid == study_uid)
        if accession_number:
            stmt = stmt.where(Report.accession_number == accession_number)
        if status:
            stmt = stmt.where(Report.status == status.value)
        with self._db.read() as s:
            views = [self._view(s, row) for row in s.scalars(stmt)]
        self._audit.record(origin, "report-query", "ok", study_uid=study_uid or "",
                           detail={"accession": accession_number or "",
                                   "status": status.value if status else "",
                                   "matches": len(views)})
        return views

    # -- changing ---------------------------------------------------------------------------
    def _audit_change(self, s: Session, origin: Origin, action: str, row: Report,
                      **detail: Any) -> None:
        append_events(s.connection(), [event_values(origin, action, "ok", study_uid=row.study_uid,
                                                    detail={"report": row.id, **detail})])

    def create(self, study_uid: str, origin: Origin, *, text: str = "",
               accession_number: str | None = None) -> ReportView:
        """A new draft for an archived study; the accession number defaults to the study's.

        Raises
        ------
        NotFound
            The study is not in the archive.
        """
        study_uid = study_uid.strip()
        study = publish.find_study(self._archive, study_uid, origin)
        if study is None:
            raise NotFound(f"study {study_uid} is not in the archive")
        accession = (accession_number if accession_number is not None
                     else str(study.get("AccessionNumber", "")))[:64]
        now = utcnow()
        with self._db.write() as s:
            row = Report(study_uid=study_uid, accession_number=accession,
                         status=ReportStatus.DRAFT.value, text=_text(text),
                         author=origin.username, created_at=now, updated_at=now)
            s.add(row)
            s.flush()
            self._audit_change(s, origin, "report-create", row)
            view = self._view(s, row)
        self._notify(view)
        return view

    def update_text(self, report_id: int, text: str, origin: Origin) -> ReportView:
        """Replace the text of a draft or preliminary report.

        Raises
        ------
        Conflict
            The report is signed: it can only be amended with an addendum.
        """
        with self._db.write() as s:
            row = self._row(s, report_id, lock=True)
            if row.status not in EDITABLE:
                raise Conflict(f"report {report_id} is {row.status}: add an addendum instead")
            row.text = _text(text)
            row.updated_at = utcnow()
            self._audit_change(s, origin, "report-edit", row)
            return self._view(s, row)

    def make_preliminary(self, report_id: int, origin: Origin) -> ReportView:
        """draft → preliminary (read, not yet signed; HL7 result status P)."""
        with self._db.write() as s:
            row = self._row(s, report_id, lock=True)
            if row.status != ReportStatus.DRAFT:
                raise Conflict(f"report {report_id} is {row.status}, not draft")
            row.status = ReportStatus.PRELIMINARY.value
            row.updated_at = utcnow()
            self._audit_change(s, origin, "report-preliminary", row)
            view = self._view(s, row)
        self._notify(view)
        return view

    def _signing_user(self, origin: Origin, signer: str | None) -> str:
        """The authenticated user; only with authentication off (no real user behind the
        request) does the request name its signer."""
        if self.settings.allow_body_signer:
            if not signer or not signer.strip():
                raise InvalidReport("a signing user is required (field 'signer')")
            return signer.strip()[:64]
        if signer and signer.strip() and signer.strip() != origin.username:
            raise NotAuthorised("the signer is the authenticated user")
        if not origin.username:
            raise NotAuthorised("signing needs an authenticated user")
        return origin.username

    def finalize(self, report_id: int, origin: Origin, *,
                 signer: str | None = None) -> ReportView:
        """Sign the report: digest and Ed25519 signature of its content; final from now on.

        Raises
        ------
        Conflict
            Already final or amended.
        InvalidReport
            Empty text, or no signing user.
        """
        user = self._signing_user(origin, signer)
        with self._db.write() as s:
            row = self._row(s, report_id, lock=True)
            if row.status not in EDITABLE:
                raise Conflict(f"report {report_id} is already {row.status}")
            if not row.text.strip():
                raise InvalidReport("an empty report cannot be signed")
            row.signer = user
            row.signed_at = utcnow().replace(microsecond=0)
            signed = self.signer.sign(report_content(row))
            row.digest, row.signature, row.key_id = signed.digest, signed.signature, signed.key_id
            row.status = ReportStatus.FINAL.value
            row.updated_at = row.signed_at
            if self._oru is not None:
                row.oru_status, row.oru_attempts, row.oru_error = "pending", 0, ""
            self._audit_change(s, origin, "report-sign", row, digest=signed.digest)
            view = self._view(s, row)
        return self._published(view, origin)

    def add_addendum(self, report_id: int, text: str, origin: Origin, *,
                     signer: str | None = None) -> ReportView:
        """Amend a signed report with a signed addendum (the report's text stays as signed).

        Raises
        ------
        Conflict
            The report is not signed yet: edit its text instead.
        """
        user = self._signing_user(origin, signer)
        if not text.strip():
            raise InvalidReport("an addendum needs text")
        with self._db.write() as s:
            row = self._row(s, report_id, lock=True)
            if row.status not in SIGNED:
                raise Conflict(f"report {report_id} is {row.status}: edit it instead")
            addendum = ReportAddendum(report_fk=row.id, text=_text(text), signer=user,
                                      signed_at=utcnow().replace(microsecond=0),
                                      digest="", signature="", key_id="")
            signed = self.signer.sign(addendum_content(row.id, row.digest, addendum))
            addendum.digest, addendum.signature = signed.digest, signed.signature
            addendum.key_id = signed.key_id
            s.add(addendum)
            row.status = ReportStatus.AMENDED.value
            row.updated_at = addendum.signed_at
            if self._oru is not None:
                row.oru_status, row.oru_attempts, row.oru_error = "pending", 0, ""
            s.flush()
            self._audit_change(s, origin, "report-addendum", row, addendum=addendum.id,
                               digest=signed.digest)
            view = self._view(s, row)
        return self._published(view, origin)

    # -- publishing -------------------------------------------------------------------------
    def _notify(self, view: ReportView) -> None:
        for listener in list(self.on_status_change):
            try:
                listener(view.study_uid, view.accession_number, view.status)
            except Exception:  # a subscriber's bug must not undo or block a report change
                log.exception("report %d: status listener failed", view.id)

    def _published(self, view: ReportView, origin: Origin) -> ReportView:
        self._notify(view)
        try:
            study = publish.find_study(self._archive, view.study_uid, origin)
        except PacsError as exc:
            log.warning("report %d: study unreadable (%s); not published", view.id, exc.code)
            return view
        if study is None:
            log.warning("report %d: study %s no longer archived; not published", view.id,
                        view.study_uid)
            return view
        try:
            series_uid, sop_uid = publish.store_sr(self._archive, view, study, self.settings,
                                                   origin)
        except PacsError as exc:
            log.warning("report %d: SR not stored (%s)", view.id, exc.code)
        else:
            self._record_sr(view, series_uid, sop_uid)
        if self._oru is not None:
            control = f"R{view.id}V{1 + len(view.addenda)}"
            self._oru.submit(view.id, build_oru(publish.oru_content(view, study),
                                                control_id=control))
        return self._load(view.id)

    def _record_sr(self, view: ReportView, series_uid: str, sop_uid: str) -> None:
        with self._db.write() as s:
            row = self._row(s, view.id, lock=True)
            row.sr_series_uid, row.sr_instance_uid = series_uid, sop_uid
            if view.addenda:
                addendum = s.get(ReportAddendum, view.addenda[-1].id)
                if addendum is not None:
                    addendum.sr_instance_uid = sop_uid

    def _oru_outcome(self, report_id: int, status: str, attempts: int, error: str) -> None:
        try:
            with self._db.write() as s:
                row = self._row(s, report_id)
                row.oru_status, row.oru_attempts, row.oru_error = status, attempts, error
        except PacsError as exc:
            log.warning("report %d: ORU outcome not recorded (%s)", report_id, exc.code)

    def flush(self, timeout: float = 30.0) -> bool:
        """Wait for queued ORU deliveries (tests and shutdown)."""
        return self._oru.flush(timeout) if self._oru is not None else True

    def close(self) -> None:
        if self._oru is not None:
            self._oru.close()

    # -- verification and export -----------------------------------------------------------
    def verify(self, report_id: int, origin: Origin) -> Verification:
        """Recompute each digest from the stored rows and check each signature.

        A row changed after signing (text, signer, time, study) fails its digest; a
        signature that is not ours fails the signature check.
        """
        view = self.get(report_id, origin, action="report-verify")
        if view.signed_at is None:
            return Verification(view.id, view.status, False, False, self.signer.key_id(), [])
        checks = [("report", self.signer.verify(report_content(view), view.digest,
                                                view.signature, view.key_id))]
        for n, a in enumerate(view.addenda, start=1):
            checks.append((f"addendum {n}", self.signer.verify(
                addendum_content(view.id, view.digest, a), a.digest, a.signature, a.key_id)))
        parts = [PartCheck(what, c.digest_ok, c.signature_ok, c.key_known) for what, c in checks]
        intact = all(c.intact for _, c in checks)
        if not intact:
            log.warning("report %d failed verification", view.id)
        return Verification(view.id, view.status, True, intact, self.signer.key_id(), parts)

    def pdf(self, report_id: int, origin: Origin) -> bytes:
        """The one-page printable report; the read is audited as a report view."""
        view = self.get(report_id, origin)
        study = publish.find_study(self._archive, view.study_uid, origin)
        return publish.report_pdf(view, study, self.settings, self.signer.key_id())

    def signing_key(self) -> tuple[str, str]:
        """(PEM of the public key, key id) for verifiers."""
        return self.signer.public_pem(), self.signer.key_id()
