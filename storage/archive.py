"""The archive service: store, find and locate instances. DIMSE and HTTP both call it.

The store pipeline keeps the promise "nothing acknowledged is ever lost" (STYLE.md):
parse the header only → validate → put the received bytes (durable) → commit the index
row with its audit record → only then report success. If indexing fails the new object is
removed again, so a crash can leave an orphan object (``pacs verify`` finds it) but never
an index row without its object.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import tempfile
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from io import BytesIO
from pathlib import Path
from typing import Any, BinaryIO

from pydicom import dcmread
from pydicom.dataset import Dataset
from sqlalchemy import bindparam, func, select
from sqlalchemy.orm import Session

from storage import metrics
from storage.audit import AuditLog
from storage.bulkdata import read_bulk_value
from storage.corrections import Corrector, Demographics, coerce_dataset
from storage.dicomio import Head, read_header
from storage.duplicates import FileAt, same_data_set
from storage.errors import DatasetDoesNotMatchSopClass, NotFound, PacsError, UnreadableDataset
from storage.frames import FrameReader, PixelRef, as_seekable
from storage.index import results
from storage.index.database import Database
from storage.index.match import Match
from storage.index.models import Instance, Patient, Series, Study
from storage.index.prepared import find_statement
from storage.index.query import Level, Query, build_select
from storage.index.writer import InstanceWriter, SameDataSet, StoreOutcome
from storage.objects import ObjectStore
from storage.origin import Origin

log = logging.getLogger(__name__)
_FETCH = 64
"""Rows of a column-only find fetched at a time: one driver call per batch, not per row."""


@dataclass(frozen=True)
class StoreResult:
    outcome: StoreOutcome
    sop_class_uid: str
    sop_instance_uid: str
    study_uid: str
    series_uid: str
    accession_number: str = ""
    demographics: Demographics | None = None
    """The patient attributes as the object carries them (for reconciliation)."""


StoreListener = Callable[[StoreResult, Origin], None]
"""Called after an instance's index commit (never for a no-op duplicate)."""


@dataclass(frozen=True)
class InstanceRef:
    """Where one archived instance is, for retrieval."""

    sop_class_uid: str
    sop_instance_uid: str
    transfer_syntax_uid: str
    object_key: str
    size: int
    coerce: tuple[tuple[str, str], ...] = ()
    """Corrected attributes to apply on the way out (empty: serve the bytes as stored)."""


def new_object_key() -> str:
    """An opaque key below the UTC day it was made: ``YYYY/MM/DD/ab/abcdef….dcm``.

    No patient data and no UID hierarchy in the name. The day groups what arrived
    together, as dcm4chee-arc's default storage path does (``{now,date,yyyy/MM/dd}/…``):
    a backup or a look at the disk can go by day, and a day's objects fill 256 leaf
    directories that are made once. A random two-level fan-out (``ab/cd/``, 65,536
    directories) made a directory, and fsynced its parent, for nearly every object of
    an archive's first hundreds of thousands: with 4 storescu associations on 2 cores
    that was 5.0 → 4.2 ms of the workers' CPU per instance and 320 → 373 instances/s
    (3 interleaved rounds of the bench corpus).
    """
    h = uuid.uuid4().hex
    return f"{time.strftime('%Y/%m/%d', time.gmtime())}/{h[:2]}/{h}.dcm"


class Archive:
    """Store, find, locate and read instances."""

    def __init__(self, db: Database, objects: ObjectStore, audit: AuditLog,
                 *, find_limit: int = 10_000) -> None:
        self.db = db
        self.objects = objects
        self.audit = audit
        self.find_limit = find_limit
        self._writer = InstanceWriter(db)
        self._io = ThreadPoolExecutor(max_workers=32, thread_name_prefix="object-put")
        self._listeners: list[StoreListener] = []
        self._corrector = Corrector(db)
        self._staging: str | None = None
        self._prepare: Callable[[str], None] | None = getattr(objects, "prepare", None)
        self._has_directories: Callable[[str], bool] | None = getattr(
            objects, "has_directories", None)
        self._prepared: deque[tuple[str, Future[None] | None]] = deque()
        """Object keys whose directories are being made ahead (:meth:`_new_key`)."""

    def add_listener(self, listener: StoreListener) -> None:
        """Call ``listener`` after every committed store (e.g. accession matching).

        Listeners run after the index commit, so the store is acknowledged whatever they
        do: their errors are logged, never reported to the sender.
        """
        self._listeners.append(listener)

    def _notify(self, result: StoreResult, origin: Origin) -> None:
        for listener in self._listeners:
            try:
                listener(result, origin)
            except Exception as exc:  # a listener must never fail an acknowledged store
                log.error("post-store listener failed for study %s: %s", result.study_uid,
                          getattr(exc, "code", type(exc).__name__))

    # -- store ------------------------------------------------------------------------------
    def store(self, path: str | Path, origin: Origin, *, sop_class_uid: str | None = None,
              sop_instance_uid: str | None = None, study_uid: str | None = None,
              consume: bool = False, sha256: str | None = None) -> StoreResult:
        """Archive the Part 10 file at ``path`` (the caller keeps and removes the file).

        ``sop_class_uid`` / ``sop_instance_uid`` are the values the request announced
        (C-STORE Affected SOP Class/Instance UID), ``study_uid`` the study a STOW-RS URL
        names (PS3.18 10.5.1.1); a dataset contradicting them is refused.

        With ``consume`` the caller gives the file away: if it lies in the object store's
        staging directory (:meth:`~storage.objects.filesystem.FilesystemStore.staging_dir`)
        it is renamed into place instead of copied, and may be gone when this returns;
        ``sha256`` is then the file's digest if its writer computed it (not read again).

        Raises
        ------
        UnreadableDataset, DatasetDoesNotMatchSopClass
            Bad input; nothing is stored.
        StorageUnavailable, StorageFull, IndexUnavailable
            The archive cannot take it now; nothing is indexed.
        """
        result, after = self.store_deferred(
            path, origin, sop_class_uid=sop_class_uid, sop_instance_uid=sop_instance_uid,
            study_uid=study_uid, consume=consume, sha256=sha256)
        after()
        return result

    def store_deferred(self, path: str | Path, origin: Origin, *,
                       sop_class_uid: str | None = None, sop_instance_uid: str | None = None,
                       study_uid: str | None = None, consume: bool = False,
                       sha256: str | None = None, head: Head | None = None
                       ) -> tuple[StoreResult, Callable[[], None]]:
        """:meth:`store`, returning as soon as the instance is durable and indexed, with
        the work that need not precede the acknowledgement left to the caller.

        A sender that waits for each response before the next request (storescu, most
        modalities, PS3.7 9.1.1's one-message-at-a-time default) pays for everything done
        before the answer on every instance: the post-store listeners (accession
        matching, a database read or more) and the metrics are not part of the promise
        that success means durable and indexed, so the C-STORE receiver answers first and
        then calls the returned function, in the same thread, before it reads the next
        request (still in order, and a slow listener slows its own association only).

        Returns
        -------
        tuple
            The result, and a function that records the store's metrics and runs the
            listeners (none for a no-op duplicate); call it exactly once. Listener errors
            are logged there, never raised.

        Raises
        ------
        The exceptions of :meth:`store` (their metrics are recorded before raising).
        """
        began = time.perf_counter()
        try:
            result, size = self._store(path, origin, sop_class_uid, sop_instance_uid,
                                       study_uid, consume, sha256, head)
        except BaseException as exc:
            metrics.observe("store", time.perf_counter() - began,
                            exc if isinstance(exc, Exception) else None)
            raise
        seconds = time.perf_counter() - began

        def after() -> None:
            metrics.observe("store", seconds)
            metrics.stored(result.outcome.value, size)
            if result.outcome is not StoreOutcome.DUPLICATE:
                self._notify(result, origin)

        return result, after

    def _store(self, path: str | Path, origin: Origin, sop_class_uid: str | None,
               sop_instance_uid: str | None, study_uid: str | None,
               consume: bool, sha256: str | None, head: Head | None = None
               ) -> tuple[StoreResult, int]:
        key, ready = self._new_key()
        # The header is read through a handle opened first, so the object store may rename
        # the file meanwhile (a staged file is adopted, not copied). The handle is opened
        # from a descriptor so that its name is that descriptor, not the path: pydicom
        # stats the name of what it reads, which would fail once the path has moved.
        try:
            fd = os.open(path, os.O_RDONLY)
        except OSError as exc:
            raise UnreadableDataset(f"received file cannot be read: {exc.strerror}") from exc
        with open(fd, "rb") as source:
            return self._store_open(source, path, key, ready, origin, sop_class_uid,
                                    sop_instance_uid, study_uid, consume, sha256, head)

    def _new_key(self) -> tuple[str, Future[None] | None]:
        """A new object key, and the making of its directories that its put must wait
        for (``None``: nothing to wait for); the next key's begins here.

        With a store that prepares keys (the filesystem's directories), the directories
        are made in a helper thread while the current store runs, off the path of the
        sender's response; where they exist already (past a day's first few hundred
        objects) nothing is handed to the helper. Each call takes one prepared key and
        prepares one, so the queue holds about one key per store running at once.
        """
        if self._prepare is None or self._has_directories is None:
            return new_object_key(), None
        try:
            key, ready = self._prepared.popleft()
        except IndexError:  # the first store of this process (or of a burst)
            key, ready = new_object_key(), None
        following = new_object_key()
        self._prepared.append((following, None if self._has_directories(following)
                               else self._io.submit(self._prepare, following)))
        return key, ready

    def _store_open(self, source: BinaryIO, path: str | Path, key: str,
                    ready: Future[None] | None, origin: Origin,
                    sop_class_uid: str | None, sop_instance_uid: str | None,
                    study_uid: str | None, consume: bool,
                    digest: str | None, head: Head | None = None
                    ) -> tuple[StoreResult, int]:
        # The object is written (and fsynced) in a helper thread while this one parses the
        # header and, for a received file whose digest is known, writes the index rows:
        # the disk wait, the parsing and the statements overlap. The index transaction
        # commits only once the object is durable, so success still means durable AND
        # indexed (and a crash before that commit leaves at most an orphan object).
        size = os.fstat(source.fileno()).st_size
        staged = consume and self._is_staged(path)
        if staged:
            put = self._io.submit(self._adopt_file, key, ready, path, size, digest)
        else:
            put = self._io.submit(self._put_file, key, ready, path)
        try:
            try:
                header = read_header(source, head=head)
                if sop_instance_uid and header.sop_instance_uid != sop_instance_uid.strip():
                    raise DatasetDoesNotMatchSopClass(
                        "SOP Instance UID differs from the request")
                if sop_class_uid and header.sop_class_uid != sop_class_uid.strip():
                    raise DatasetDoesNotMatchSopClass("SOP Class UID differs from the request")
                if study_uid and header.study_uid != study_uid.strip():
                    raise DatasetDoesNotMatchSopClass("Study Instance UID differs from the request")
                header.metadata_json()  # built here, in parallel with the disk wait
            except BaseException:
                self._abandon(put, key)
                raise
            same = self._same_data_set(source, size)
            if staged and digest is not None:
                # Size and digest are known already: the index rows may be written while
                # the object is made durable (InstanceWriter.write), the commit follows.
                try:
                    outcome = self._writer.write(header, key, size, digest, origin,
                                                 durable=put.result, same_data_set=same)
                except BaseException:
                    self._abandon(put, key)
                    raise
                put.result()  # a duplicate returns without waiting for it
            else:
                size, sha256 = put.result()
                try:
                    outcome = self._writer.write(header, key, size, sha256, origin,
                                                 same_data_set=same)
                except BaseException:
                    self._discard(key)
                    raise
            if outcome is StoreOutcome.DUPLICATE:
                self._discard(key)
            result = StoreResult(
                outcome, header.sop_class_uid, header.sop_instance_uid, header.study_uid,
                header.series_uid, header.text("AccessionNumber")[:64],
                Demographics(header.text("PatientID")[:64], header.text("PatientName"),
                             header.text("PatientBirthDate")[:8], header.text("PatientSex")))
        except PacsError as exc:
            self.audit.record(origin, "store", "failed", detail={"error": exc.code})
            raise
        return result, size

    def _is_staged(self, path: str | Path) -> bool:
        staging = getattr(self.objects, "staging_dir", None)
        if staging is None:
            return False
        if self._staging is None:
            self._staging = str(staging())
        # Strings, not Path objects: this runs for every stored instance.
        return os.path.dirname(os.fspath(path)) == self._staging

    def _adopt_file(self, key: str, ready: Future[None] | None, path: str | Path, size: int,
                    digest: str | None) -> tuple[int, str]:
        self._await_directories(key, ready)
        return size, self.objects.adopt(key, path, sha256=digest)  # type: ignore[attr-defined]

    def _put_file(self, key: str, ready: Future[None] | None,
                  path: str | Path) -> tuple[int, str]:
        self._await_directories(key, ready)
        size = os.path.getsize(path)
        with open(path, "rb") as fh:
            return size, self.objects.put(key, fh, size=size)

    def _await_directories(self, key: str, ready: Future[None] | None) -> None:
        """Wait until the directories :meth:`_new_key` made for ``key`` are durable. If
        making them failed (the key may have waited since a disk was full), try once
        more now: its error, if any, is the store's."""
        if ready is None or self._prepare is None:
            return
        try:
            ready.result()
        except PacsError:
            self._prepare(key)

    def _abandon(self, put: Future[tuple[int, str]], key: str) -> None:
        """Wait for a put whose dataset was refused or not indexed, then remove what it
        wrote: a put failing late (the directory fsync after the rename) leaves the
        object in place."""
        try:
            put.result()
        except PacsError:
            pass
        self._discard(key)

    def adopt(self, key: str, origin: Origin) -> StoreOutcome:
        """Index an object that is in storage without an index row (``pacs verify --repair``).

        Objects are made durable before the index commits, so after a power loss the index
        may lack the last rows but the objects are there: adopting them restores every
        acknowledged instance. An orphan identical to an indexed object is removed.
        """
        digest = hashlib.sha256()
        with tempfile.NamedTemporaryFile(suffix=".dcm") as tmp:
            with self.objects.open(key) as fh:
                while chunk := fh.read(1 << 20):
                    digest.update(chunk)
                    tmp.write(chunk)
            tmp.flush()
            header = read_header(tmp.name)
            outcome = self._writer.write(header, key, tmp.tell(), digest.hexdigest(), origin,
                                         same_data_set=self._same_data_set(tmp, tmp.tell()))
        if outcome is StoreOutcome.DUPLICATE:
            self._discard(key)
        return outcome

    def _same_data_set(self, source: BinaryIO, size: int) -> SameDataSet:
        """Compares the object being stored (open as ``source``, ``size`` bytes) with an
        archived object, for :meth:`InstanceWriter.write` on a digest mismatch.

        ``source`` is read by position: the received file may have been renamed into the
        object store by then. An archived object that cannot be read counts as
        different: the newcomer is then kept as a revision, as before, and nothing is
        lost.
        """
        def same(key: str, stored_size: int) -> bool:
            try:
                with self.objects.open(key) as stored:
                    return same_data_set(FileAt(source.fileno()), size, stored, stored_size)
            except PacsError as exc:
                log.warning("archived object %s not compared (%s); storing a revision",
                            key, exc.code)
                return False

        return same

    def _discard(self, key: str) -> None:
        try:
            self.objects.delete(key)
        except PacsError:
            log.warning("could not remove object %s; pacs verify will report it", key)

    # -- find -------------------------------------------------------------------------------
    def find(self, query: Query, origin: Origin) -> Iterator[Match]:
        """Yield one :class:`Match` per matching entity, holding the requested keys; at
        most ``find_limit``. A match writes itself as a C-FIND identifier or DICOM JSON.

        The query is audited (level and matching keys) before any match is returned.
        """
        with metrics.timed("find"):
            yield from self._find(query, origin)

    def _find(self, query: Query, origin: Origin) -> Iterator[Match]:
        keys = results.response_keys(query.level, query.return_keys)
        with_header = results.needs_header(query.level, keys)
        # When every requested key is an index column, read those columns only, not whole
        # entities (nor the JSON header, the bulk of an instance row). The statement is
        # built once per query shape (storage.index.prepared).
        stmt, values = find_statement(query, keys, cap=self.find_limit,
                                      columns_only=not with_header)
        self.audit.record(origin, "query", "ok", patient_id=query.filters.get("PatientID", ""),
                          study_uid=query.filters.get("StudyInstanceUID", "")[:64],
                          detail={"level": query.level.value,
                                  "keys": {k: v for k, v in query.filters.items() if v}})
        if not with_header:
            # A Core connection: the rows are plain columns, the ORM session would only
            # add per-query work.
            read = results.column_reader(query.level, keys)
            with self.db.select(stmt, values) as result:
                while rows := result.fetchmany(_FETCH):
                    for row in rows:
                        yield read(row)
            return
        with self.db.read() as s:
            for row in s.execute(stmt, values):
                header = self._header_for(s, query.level, row)
                yield results.build(query.level, tuple(row), keys, header)

    def _header_for(self, s: Session, level: Level, row: Any) -> str | None:
        if level == Level.IMAGE:
            return str(row[3].metadata_json)
        stmt = select(Instance.metadata_json).join(Series, Instance.series_fk == Series.id)
        if level == Level.SERIES:
            stmt = stmt.where(Series.id == row[2].id)
        elif level == Level.STUDY:
            stmt = stmt.where(Series.study_fk == row[1].id)
        else:
            stmt = stmt.join(Study, Series.study_fk == Study.id).where(
                Study.patient_fk == row[0].id)
        return s.scalar(stmt.limit(1))

    # -- retrieve ---------------------------------------------------------------------------
    def locate(self, query: Query, origin: Origin, *, action: str = "retrieve",
               destination: str = "") -> list[InstanceRef]:
        """Every instance below the entities ``query`` matches (C-MOVE, C-GET, WADO)."""
        with metrics.timed("locate"):
            return self._locate(query, origin, action, destination)

    def _locate(self, query: Query, origin: Origin, action: str,
                destination: str) -> list[InstanceRef]:
        instance_query = Query(Level.IMAGE, dict(query.filters))
        stmt = build_select(instance_query, cap=10_000_000).with_only_columns(
            Instance.sop_class_uid, Instance.sop_instance_uid, Instance.transfer_syntax_uid,
            Instance.object_key, Instance.size, Study.corrected_at, Patient.patient_id,
            Patient.patient_name, Patient.birth_date, Patient.sex, Study.accession_number,
            maintain_column_froms=True)
        # A Core connection, not an ORM session: plain rows are all this needs, and for
        # a study of hundreds of instances the session's row processing was a third of
        # the lookup.
        with self.db.select(stmt) as rows:
            refs = [InstanceRef(*row[:5], coerce=_coercion(row[5:])) for row in rows]
        self.audit.record(origin, action, "ok",
                          patient_id=query.filters.get("PatientID", ""),
                          study_uid=query.filters.get("StudyInstanceUID", "")[:64],
                          detail={"level": query.level.value, "instances": len(refs),
                                  "destination": destination,
                                  "keys": {k: v for k, v in query.filters.items() if v}})
        return refs

    def locate_instance(self, study_uid: str, series_uid: str, sop_instance_uid: str,
                        origin: Origin, *, action: str = "retrieve") -> InstanceRef | None:
        """The one instance these three UIDs name, or ``None``; audited like :meth:`locate`.

        The answer :meth:`locate` gives for an IMAGE-level query with exactly these UIDs,
        by one indexed lookup with a statement built once per process: a cached rendered
        preview costs little more than this lookup and its audit record, so the general
        query translation (:func:`~storage.index.query.build_select`) and the ORM session
        would be most of its time. The UIDs are bound parameters and compared for
        equality only: no wildcard or list matching (PS3.18 URLs name single UIDs).
        """
        params = {"study": study_uid, "series": series_uid, "sop": sop_instance_uid}
        with self.db.select(_ONE_INSTANCE, params) as result:
            row = result.first()
        ref = InstanceRef(*row[:5], coerce=_coercion(row[5:])) if row is not None else None
        keys = {"StudyInstanceUID": study_uid, "SeriesInstanceUID": series_uid,
                "SOPInstanceUID": sop_instance_uid}
        self.audit.record(origin, action, "ok", patient_id=str(row[6])[:64] if row else "",
                          study_uid=study_uid[:64],
                          detail={"level": Level.IMAGE.value, "instances": int(bool(ref)),
                                  "destination": "", "keys": keys})
        return ref

    def representative(self, query: Query, origin: Origin, *,
                       action: str = "render") -> InstanceRef | None:
        """The one instance that stands for a study or series in a preview, or ``None``.

        PS3.18 10.4.1.1.3 leaves the content of a rendered study or series to the origin
        server; like dcm4chee-arc we render the middle instance (by Instance Number, the
        upper middle for an even count) of the first series (by Series Number) that holds
        images (instances with Rows), falling back to any instance so that a study of
        reports only gets a clear "not renderable" answer. The read is audited as ``action``
        for the chosen instance.
        """
        instance_query = Query(Level.IMAGE, dict(query.filters))
        stmt = build_select(instance_query, cap=10_000_000).with_only_columns(
            Series.series_number, Series.id, Instance.rows, Instance.instance_number,
            Instance.id, Instance.sop_class_uid, Instance.sop_instance_uid,
            Instance.transfer_syntax_uid, Instance.object_key, Instance.size,
            maintain_column_froms=True)
        with self.db.read() as s:
            rows = [tuple(row) for row in s.execute(stmt)]
        chosen: InstanceRef | None = None
        if rows:
            images = [r for r in rows if r[2] is not None] or rows
            first = min(images, key=lambda r: (r[0] is None, r[0] or 0, r[1]))
            members = sorted((r for r in images if r[1] == first[1]),
                             key=lambda r: (r[3] is None, r[3] or 0, r[4]))
            chosen = InstanceRef(*members[len(members) // 2][5:])
        self.audit.record(origin, action, "ok",
                          patient_id=query.filters.get("PatientID", ""),
                          study_uid=query.filters.get("StudyInstanceUID", "")[:64],
                          detail={"level": query.level.value, "instances": int(bool(chosen)),
                                  "sop_instance_uid": chosen.sop_instance_uid if chosen else "",
                                  "keys": {k: v for k, v in query.filters.items() if v}})
        return chosen

    def metadata(self, query: Query, origin: Origin) -> Iterator[str]:
        """The DICOM JSON header of every instance below what ``query`` matches.

        Yields each instance's stored header (PS3.18 F.2, without bulk data) as a JSON
        object text, in index order, straight from the index: WADO-RS ``/metadata``
        (PS3.18 10.4) never reads object storage (STYLE.md anti-pattern 5). The read is
        audited before the first header is returned.
        """
        instance_query = Query(Level.IMAGE, dict(query.filters))
        stmt = build_select(instance_query, cap=10_000_000).with_only_columns(
            Instance.metadata_json, maintain_column_froms=True
        ).execution_options(yield_per=500)
        self.audit.record(origin, "metadata", "ok",
                          patient_id=query.filters.get("PatientID", ""),
                          study_uid=query.filters.get("StudyInstanceUID", "")[:64],
                          detail={"level": query.level.value,
                                  "keys": {k: v for k, v in query.filters.items() if v}})
        with self.db.read() as s:
            for (text,) in s.execute(stmt):
                yield str(text)

    def locate_pixels(self, query: Query, origin: Origin, *, action: str = "frames",
                      detail: dict[str, Any] | None = None) -> PixelRef:
        """Where the one instance ``query`` names keeps its pixel data (WADO-RS frames and
        bulk data, PS3.18 10.4): a single index row, no object read. Audited.

        Raises
        ------
        NotFound
            No instance with these UIDs.
        """
        stmt = build_select(Query(Level.IMAGE, dict(query.filters)), cap=1).with_only_columns(
            Instance.object_key, Instance.transfer_syntax_uid, Instance.pixel_data_offset,
            Instance.pixel_data_length, Instance.metadata_json, maintain_column_froms=True)
        with self.db.read() as s:
            row = s.execute(stmt).first()
        ref = PixelRef.from_row(*row) if row is not None else None
        patient = ref.header.get("00100020", {}).get("Value", [""])[0] if ref else ""
        self.audit.record(origin, action, "ok" if ref is not None else "not-found",
                          patient_id=str(patient or "")[:64],
                          study_uid=query.filters.get("StudyInstanceUID", "")[:64],
                          detail={"sop_instance_uid": query.filters.get("SOPInstanceUID", ""),
                                  **(detail or {})})
        if ref is None:
            raise NotFound("no instance with these UIDs")
        return ref

    def frame_reader(self, ref: PixelRef) -> FrameReader:
        """Reads frames of the instance ``ref`` from object storage, lazily."""
        return FrameReader(self.objects, ref)

    def bulk_value(self, ref: PixelRef, path: list[int]) -> bytes:
        """The binary element at ``path`` (:func:`storage.bulkdata.parse_path`) of ``ref``."""
        with as_seekable(self.objects.open(ref.object_key)) as fh:
            return read_bulk_value(fh, path)

    def open(self, ref: InstanceRef) -> BinaryIO:
        """The stored bytes, as received."""
        return self.objects.open(ref.object_key)

    def read_dataset(self, ref: InstanceRef) -> Dataset:
        """The archived object as a dataset (pixel data kept encoded, never decoded), with
        corrected demographics applied (:mod:`storage.corrections`).

        pydicom seeks while it parses; an object-store stream that cannot seek (an S3
        GetObject body) is first spooled to a temporary file (in memory up to 64 MiB).
        """
        with self.open(ref) as fh:
            if fh.seekable():
                ds = dcmread(fh, force=True)
            else:
                with tempfile.SpooledTemporaryFile(max_size=64 << 20) as spool:
                    shutil.copyfileobj(fh, spool, 1 << 20)
                    spool.seek(0)
                    ds = dcmread(spool, force=True)
        return coerce_dataset(ds, ref.coerce) if ref.coerce else ds

    def payload(self, ref: InstanceRef) -> tuple[int, BinaryIO]:
        """``(size, stream)`` of the object to send: the stored bytes, or for a corrected
        study the object re-written with the index's demographics (pixel data untouched,
        same transfer syntax)."""
        if not ref.coerce:
            return ref.size, self.open(ref)
        buffer = BytesIO()
        self.read_dataset(ref).save_as(buffer, enforce_file_format=True)
        buffer.seek(0)
        return len(buffer.getbuffer()), buffer

    # -- corrections (RIS) ------------------------------------------------------------------
    def correct_patient(self, demographics: Demographics, origin: Origin) -> int:
        """Apply corrected demographics to every study of that patient ID."""
        count = self._corrector.correct_patient(demographics, origin)
        self._writer.forget()
        return count

    def correct_study(self, study_uid: str, demographics: Demographics, origin: Origin, *,
                      accession_number: str | None = None,
                      instance_uid: str | None = None) -> int:
        """Give one study corrected demographics (and accession number); see
        :meth:`storage.corrections.Corrector.correct_study`."""
        count = self._corrector.correct_study(study_uid, demographics, origin,
                                              accession_number=accession_number,
                                              instance_uid=instance_uid)
        self._writer.forget()
        return count

    def study_patient(self, study_uid: str) -> tuple[str, str] | None:
        """``(patient ID, accession number)`` of an archived study, or ``None``."""
        with self.db.read() as s:
            row = s.execute(select(Patient.patient_id, Study.accession_number)
                            .join(Study, Study.patient_fk == Patient.id)
                            .where(Study.study_uid == study_uid)).first()
            return (row[0], row[1]) if row is not None else None

    def count(self) -> dict[str, int]:
        with self.db.read() as s:
            return {
                "patients": s.scalar(select(func.count(Patient.id))) or 0,
                "studies": s.scalar(select(func.count(Study.id))) or 0,
                "series": s.scalar(select(func.count(Series.id))) or 0,
                "instances": s.scalar(select(func.count(Instance.id))) or 0,
            }


_ONE_INSTANCE = (
    select(Instance.sop_class_uid, Instance.sop_instance_uid, Instance.transfer_syntax_uid,
           Instance.object_key, Instance.size, Study.corrected_at, Patient.patient_id,
           Patient.patient_name, Patient.birth_date, Patient.sex, Study.accession_number)
    .join(Series, Instance.series_fk == Series.id)
    .join(Study, Series.study_fk == Study.id)
    .join(Patient, Study.patient_fk == Patient.id)
    .where(Instance.sop_instance_uid == bindparam("sop"),
           Series.series_uid == bindparam("series"),
           Study.study_uid == bindparam("study"))
    .limit(1)
)
"""The row of :meth:`Archive.locate_instance`, in :class:`InstanceRef` order + coercion."""


def _coercion(row: Any) -> tuple[tuple[str, str], ...]:
    corrected_at, patient_id, name, birth_date, sex, accession = row
    if corrected_at is None:
        return ()
    return (("PatientID", patient_id), ("PatientName", name), ("PatientBirthDate", birth_date),
            ("PatientSex", sex), ("AccessionNumber", accession))
