"""Storage commitment: does the archive really hold these instances? (PS3.4 Annex J).

A modality asks for commitment before it deletes its local copy, so the answer must not
be assumed from the index alone: every referenced instance is looked up in the index AND
its object is read back from object storage and compared with the size and SHA-256
recorded at ingest. Only an instance that passes both is reported as committed.
"""

from __future__ import annotations

import enum
import hashlib
import logging
from collections.abc import Iterable
from dataclasses import dataclass, field

from sqlalchemy import select

from storage.audit import AuditLog
from storage.errors import PacsError
from storage.index.database import Database
from storage.index.models import Instance
from storage.objects import ObjectStore
from storage.origin import Origin

log = logging.getLogger(__name__)


class FailureReason(enum.IntEnum):
    """Why an instance is not committed: Failure Reason (0008,1197), PS3.3 C.14.1.1."""

    PROCESSING_FAILURE = 0x0110
    """The object is indexed but missing, unreadable or different in object storage."""
    NO_SUCH_OBJECT_INSTANCE = 0x0112
    """The archive has no instance with this SOP Instance UID."""
    CLASS_INSTANCE_CONFLICT = 0x0119
    """The instance exists with another SOP Class UID than the one referenced."""


@dataclass(frozen=True)
class SopRef:
    """One Referenced SOP Sequence item: (0008,1150) class and (0008,1155) instance."""

    sop_class_uid: str
    sop_instance_uid: str


@dataclass(frozen=True)
class Failure:
    ref: SopRef
    reason: FailureReason


@dataclass
class CommitmentResult:
    """The outcome of one commitment request (PS3.4 J.3.3 N-EVENT-REPORT content)."""

    transaction_uid: str
    committed: list[SopRef] = field(default_factory=list)
    failed: list[Failure] = field(default_factory=list)

    @property
    def all_committed(self) -> bool:
        return not self.failed


def _sha256(objects: ObjectStore, key: str) -> tuple[int, str]:
    digest = hashlib.sha256()
    size = 0
    with objects.open(key) as fh:
        while chunk := fh.read(1 << 20):
            size += len(chunk)
            digest.update(chunk)
    return size, digest.hexdigest()


class StorageCommitment:
    """Check a list of instances against the index and object storage, and audit it."""

    def __init__(self, db: Database, objects: ObjectStore, audit: AuditLog) -> None:
        self._db = db
        self._objects = objects
        self._audit = audit

    def commit(self, transaction_uid: str, refs: Iterable[SopRef],
               origin: Origin) -> CommitmentResult:
        """Check every referenced instance; return which are committed and which failed.

        An instance is committed only if its index row exists with the same SOP Class
        and its object reads back with the recorded size and SHA-256 (PS3.4 J.3.1: the
        SCP takes responsibility for the instances it reports as committed).

        Raises
        ------
        IndexUnavailable
            The index cannot be read; nothing can be answered now.
        """
        refs = list(refs)
        uids = {r.sop_instance_uid for r in refs}
        rows: dict[str, tuple[str, str, int, str]] = {}
        with self._db.read() as s:
            stmt = select(Instance.sop_instance_uid, Instance.sop_class_uid,
                          Instance.object_key, Instance.size, Instance.sha256)
            uid_list = sorted(uids)
            for start in range(0, len(uid_list), 500):
                chunk = uid_list[start:start + 500]
                for uid, cls, key, size, sha in s.execute(
                        stmt.where(Instance.sop_instance_uid.in_(chunk))):
                    rows[uid] = (cls, key, size, sha)
        result = CommitmentResult(transaction_uid)
        for ref in refs:
            reason = self._check(ref, rows.get(ref.sop_instance_uid))
            if reason is None:
                result.committed.append(ref)
            else:
                result.failed.append(Failure(ref, reason))
                log.warning("commitment %s: %s not committed (0x%04X)", transaction_uid,
                            ref.sop_instance_uid, reason)
        self._audit.record(origin, "commitment", "ok" if result.all_committed else "partial",
                           detail={"transaction": transaction_uid,
                                   "committed": len(result.committed),
                                   "failed": {f.ref.sop_instance_uid: int(f.reason)
                                              for f in result.failed}})
        return result

    def _check(self, ref: SopRef,
               row: tuple[str, str, int, str] | None) -> FailureReason | None:
        if row is None:
            return FailureReason.NO_SUCH_OBJECT_INSTANCE
        sop_class, key, size, sha256 = row
        if sop_class != ref.sop_class_uid:
            return FailureReason.CLASS_INSTANCE_CONFLICT
        try:
            actual = _sha256(self._objects, key)
        except PacsError as exc:  # missing or unreadable object
            log.warning("commitment: object of %s unreadable (%s)", ref.sop_instance_uid,
                        exc.code)
            return FailureReason.PROCESSING_FAILURE
        if actual != (size, sha256):
            log.warning("commitment: object of %s differs from its index row",
                        ref.sop_instance_uid)
            return FailureReason.PROCESSING_FAILURE
        return None
