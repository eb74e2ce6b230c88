"""The hash chain of the audit trail: append under a database lock, verify from the start.

Every record carries a gap-free sequence number ``seq`` and ``hash = sha256(prev_hash +
canonical(record))``, where ``prev_hash`` is the hash of record ``seq - 1`` (the genesis
value for the first). Editing a past record breaks its hash; deleting one leaves a gap in
``seq`` and a ``prev_hash`` that no longer matches; deleting the newest ones leaves the
chain shorter than its head row (:class:`~storage.index.models.AuditChainHead`). This is
the tamper evidence IHE ATNA (ITI-20) and ISO 27789 ask of an audit repository; anchoring
the head outside the database (a printed or mailed hash) is left to the operator.

Appends are serialised in the database, not in the process, because several DICOM worker
processes write the same chain: the head row is read ``FOR UPDATE`` (PostgreSQL) inside the
writer's transaction; on SQLite every write transaction already begins ``IMMEDIATE``.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, bindparam, insert, select, text, update

from storage.index.database import Database
from storage.index.dialects import insert_ignore
from storage.index.direct import DirectStatement
from storage.index.models import AuditChainHead, AuditEvent

GENESIS = "0" * 64
"""``prev_hash`` of the first record."""

CHAINED_FIELDS = ("seq", "at", "channel", "username", "role", "calling_ae", "called_ae",
                  "address", "action", "outcome", "patient_id", "study_uid", "detail")
"""The columns a record's hash covers, in this order (every column but ``id`` and hashes)."""

_E = AuditEvent.__table__
_H = AuditChainHead.__table__
_INSERT = insert(_E)
_HEAD = select(_H.c.last_seq, _H.c.last_hash).where(_H.c.id == 1)
# Built once: every stored instance appends one record, and a statement built per call
# costs its construction and cache-key computation each time (~0.2 ms of an ingest).
# Every stored instance runs these, so they run on the DBAPI cursor (storage.index.direct).
_LOCK_HEAD = DirectStatement(_HEAD.with_for_update())
_INSERT_ONE = DirectStatement(_INSERT)
_MOVE_HEAD = DirectStatement(update(_H).where(_H.c.id == 1).values(
    last_seq=bindparam("seq"), last_hash=bindparam("hash")))
_APPEND_HASHED_POSTGRES = DirectStatement(text(
    f"WITH locked AS (SELECT last_seq, last_hash FROM {_H.name} WHERE id = 1 FOR UPDATE),"
    " head AS (SELECT last_seq + 1 AS seq, last_hash AS prev FROM locked"
    " UNION ALL SELECT 1, :genesis WHERE NOT EXISTS (SELECT FROM locked)),"
    f" appended AS (INSERT INTO {_E.name} (" + ", ".join(CHAINED_FIELDS)
    + ", prev_hash, hash) SELECT seq, CAST(:at AS TIMESTAMP), "
    + ", ".join(f":{name}" for name in CHAINED_FIELDS[2:])
    + ", prev, encode(sha256(convert_to(prev || '[' || CAST(seq AS TEXT) || ',' || :tail,"
    " 'UTF8')), 'hex') FROM head RETURNING seq, hash)"
    f" INSERT INTO {_H.name} (id, last_seq, last_hash) SELECT 1, seq, hash FROM appended"
    " ON CONFLICT (id) DO UPDATE SET last_seq = excluded.last_seq,"
    " last_hash = excluded.last_hash"))
"""One record appended in one PostgreSQL statement, hashed in the database: the head is
locked and read, the record chained (:func:`chain_hash`, from the ``tail`` of its
canonical form that follows ``seq``) and inserted, and the head moved past it, with no
round trip between reading the head and writing the record. A stored instance's audit
record costs one round trip, where reading the head first made it two. A missing head
row begins the chain, as in :func:`append`."""


def canonical(record: dict[str, Any]) -> bytes:
    """The bytes a record's hash covers: its chained fields as a compact JSON array."""
    values = []
    for name in CHAINED_FIELDS:
        value = record[name]
        values.append(value.isoformat(timespec="microseconds")
                      if isinstance(value, datetime) else value)
    return json.dumps(values, ensure_ascii=False, separators=(",", ":")).encode()


def _after_seq(event: dict[str, Any]) -> str:
    """What follows ``[seq,`` in the canonical form of ``event``'s record, whatever its
    ``seq`` (``seq`` is the first chained field, an integer)."""
    return canonical(dict(event, seq=0)).decode()[len("[0,"):]


def chain_hash(prev_hash: str, record: dict[str, Any]) -> str:
    """sha256(prev_hash + canonical(record)), hex."""
    return hashlib.sha256(prev_hash.encode() + canonical(record)).hexdigest()


def append(conn: Connection, events: list[dict[str, Any]]) -> None:
    """Chain and insert ``events`` in the caller's transaction (which must be a write one).

    The head row stays locked until that transaction ends, so another process appending
    at the same time waits and then continues from this batch's last hash.
    """
    if not events:
        return
    if len(events) == 1 and conn.dialect.name == "postgresql":
        event = events[0]
        _APPEND_HASHED_POSTGRES.execute(conn, dict(event, genesis=GENESIS,
                                                    tail=_after_seq(event)))
        return
    head = _LOCK_HEAD.first(conn, {})
    if head is None:  # a schema created without the migration's head row
        conn.execute(insert_ignore(conn.dialect.name, _H, id=1, last_seq=0,
                                   last_hash=GENESIS))
        head = _LOCK_HEAD.first(conn, {})
        assert head is not None
    seq, prev = int(head[0]), str(head[1])
    rows = []
    for event in events:
        seq += 1
        row = dict(event, seq=seq, prev_hash=prev)
        row["hash"] = prev = chain_hash(prev, row)
        rows.append(row)
    if len(rows) == 1:
        _INSERT_ONE.execute(conn, rows[0])
    else:
        conn.execute(_INSERT, rows)
    _MOVE_HEAD.execute(conn, {"seq": seq, "hash": prev})


@dataclass(frozen=True)
class ChainReport:
    """What :func:`verify` found: ``broken_at`` is the first bad ``seq`` (``None`` if intact)."""

    records: int
    broken_at: int | None = None
    reason: str = ""

    @property
    def intact(self) -> bool:
        return self.broken_at is None


def _rows(db: Database) -> Iterator[dict[str, Any]]:
    columns = [_E.c[name] for name in CHAINED_FIELDS] + [_E.c.prev_hash, _E.c.hash]
    stmt = select(*columns).order_by(_E.c.seq).execution_options(yield_per=1000)
    with db.read() as s:
        for row in s.execute(stmt):
            yield dict(row._mapping)


def verify(db: Database) -> ChainReport:
    """Walk the whole chain in ``seq`` order and report the first broken record.

    A record is broken when its ``seq`` is not the next number (one was deleted), when its
    ``prev_hash`` is not the previous record's hash, or when its own hash does not match
    its content (it was edited). The end of the chain must be the head row.
    """
    expected_seq, prev, count = 1, GENESIS, 0
    for row in _rows(db):
        count += 1
        seq = int(row["seq"])
        if seq != expected_seq:
            return ChainReport(count, expected_seq,
                               f"record {expected_seq} is missing (deleted?); next is {seq}")
        if row["prev_hash"] != prev:
            return ChainReport(count, seq, f"record {seq} does not follow record {seq - 1}")
        if chain_hash(prev, row) != row["hash"]:
            return ChainReport(count, seq, f"record {seq} was modified (hash mismatch)")
        prev, expected_seq = row["hash"], seq + 1
    with db.read() as s:
        head = s.execute(_HEAD).first()
    last_seq, last_hash = (int(head.last_seq), str(head.last_hash)) if head else (0, GENESIS)
    if last_seq != expected_seq - 1 or last_hash != prev:
        return ChainReport(count, expected_seq,
                           f"the chain ends at record {expected_seq - 1} but its head names "
                           f"record {last_seq} (newest records deleted?)")
    return ChainReport(count)
