"""The service container: everything one process needs, opened once (STYLE.md)."""

from __future__ import annotations

from dataclasses import dataclass

from ris.hl7.handler import Hl7Handler
from ris.mpps import PerformedSteps
from ris.orders import Orders
from ris.patients import Patients
from ris.reconcile import Reconciler
from ris.reports import ReportService, ReportSettings
from ris.savings import CostModel, SavingsService
from ris.savings.workflow import OrderDepartments, SignedReports
from ris.worklist import Worklist
from storage import StorageSettings
from storage.accounts import Accounts, AuthSettings
from storage.aes import AeRegistry
from storage.archive import Archive
from storage.audit import AuditLog
from storage.commitment import StorageCommitment
from storage.index.database import Database
from storage.objects import ObjectStore, open_store


@dataclass
class Services:
    """The archive and its collaborators, shared by every DIMSE, HTTP and HL7 handler."""

    settings: StorageSettings
    db: Database
    objects: ObjectStore
    audit: AuditLog
    archive: Archive
    aes: AeRegistry
    accounts: Accounts
    patients: Patients
    orders: Orders
    worklist: Worklist
    mpps: PerformedSteps
    reconciler: Reconciler
    hl7: Hl7Handler
    commitment: StorageCommitment
    reports: ReportService
    savings: SavingsService

    def close(self) -> None:
        self.reports.close()
        self.audit.flush()
        self.db.dispose()


def build_services(settings: StorageSettings, auth: AuthSettings | None = None,
                   reports: ReportSettings | None = None, *,
                   cost_model: CostModel | None = None) -> Services:
    """Open the index engine and the object store once for this process, register the
    post-store listener that matches arriving studies to their orders, and let report
    sign-offs advance those orders. ``cost_model`` prices the savings report (defaults:
    ``docs/savings.md``)."""
    db = Database(settings.database_url, sqlite_synchronous=settings.sqlite_synchronous)
    objects = open_store(settings.storage_url, fsync=settings.fsync,
                         endpoint_url=settings.s3_endpoint_url)
    audit = AuditLog(db)
    archive = Archive(db, objects, audit, find_limit=settings.find_limit)
    patients = Patients(db, audit, archive)
    orders = Orders(db, audit, archive)
    reconciler = Reconciler(db, audit, archive)
    archive.add_listener(reconciler.on_store)
    report_service = ReportService(db, archive, audit, reports or ReportSettings())
    report_service.on_status_change.append(orders.follow_report)
    return Services(settings=settings, db=db, objects=objects, audit=audit, archive=archive,
                    aes=AeRegistry(db), accounts=Accounts(db, audit, auth),
                    patients=patients, orders=orders,
                    worklist=Worklist(db, audit, find_limit=settings.find_limit),
                    mpps=PerformedSteps(db), reconciler=reconciler,
                    hl7=Hl7Handler(patients, orders),
                    commitment=StorageCommitment(db, objects, audit),
                    reports=report_service,
                    savings=SavingsService(db, objects, cost_model,
                                           orders=OrderDepartments(db),
                                           reports=SignedReports(db)))
