"""The service container: everything one process needs, opened once (STYLE.md)."""

from __future__ import annotations

from dataclasses import dataclass

from ris.savings import CostModel, SavingsService
from storage import StorageSettings
from storage.aes import AeRegistry
from storage.archive import Archive
from storage.audit import AuditLog
from storage.index.database import Database
from storage.objects import ObjectStore, open_store


@dataclass
class Services:
    """The archive and its collaborators, shared by every DIMSE and HTTP handler."""

    settings: StorageSettings
    db: Database
    objects: ObjectStore
    audit: AuditLog
    archive: Archive
    aes: AeRegistry
    savings: SavingsService

    def close(self) -> None:
        self.audit.flush()
        self.db.dispose()


def build_services(settings: StorageSettings, *,
                   cost_model: CostModel | None = None) -> Services:
    """Open the index engine and the object store once for this process.

    ``cost_model`` prices the savings report (defaults: ``docs/savings.md``).
    """
    db = Database(settings.database_url, sqlite_synchronous=settings.sqlite_synchronous)
    objects = open_store(settings.storage_url, fsync=settings.fsync,
                         endpoint_url=settings.s3_endpoint_url)
    audit = AuditLog(db)
    archive = Archive(db, objects, audit, find_limit=settings.find_limit)
    return Services(settings=settings, db=db, objects=objects, audit=audit, archive=archive,
                    aes=AeRegistry(db), savings=SavingsService(db, objects, cost_model))
