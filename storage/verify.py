"""Consistency check of index and object storage (``pacs verify``).

Every index row (current instances and kept revisions) must have its object with the
recorded SHA-256; every object must have its row. An object without a row is what a crash
between put and commit leaves behind: reported, never silently deleted.
"""

from __future__ import annotations

import enum
import hashlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from sqlalchemy import select

from storage.errors import ObjectNotFound, PacsError
from storage.index.database import Database
from storage.index.models import Instance, Revision
from storage.objects import ObjectStore


class Problem(enum.StrEnum):
    MISSING_OBJECT = "missing object"
    CHECKSUM_MISMATCH = "checksum mismatch"
    UNREADABLE_OBJECT = "unreadable object"
    ORPHAN_OBJECT = "object without index row"


@dataclass(frozen=True)
class Finding:
    problem: Problem
    object_key: str
    sop_instance_uid: str = ""


def _sha256(objects: ObjectStore, key: str) -> str:
    digest = hashlib.sha256()
    with objects.open(key) as fh:
        while chunk := fh.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def indexed_objects(db: Database) -> list[tuple[str, str, str]]:
    """``(object_key, sha256, sop_instance_uid)`` of every current and earlier revision."""
    with db.read() as s:
        rows = list(s.execute(select(Instance.object_key, Instance.sha256,
                                     Instance.sop_instance_uid)))
        rows += list(s.execute(select(Revision.object_key, Revision.sha256,
                                      Revision.sop_instance_uid)))
    return [(str(k), str(h), str(u)) for k, h, u in rows]


def verify(db: Database, objects: ObjectStore, *,
           progress: Callable[[int], None] | None = None) -> Iterator[Finding]:
    """Yield every inconsistency; ``progress(n)`` is called after each checked object."""
    rows = indexed_objects(db)
    known = set()
    for key, sha256, uid in rows:
        known.add(key)
        try:
            actual = _sha256(objects, key)
        except ObjectNotFound:
            yield Finding(Problem.MISSING_OBJECT, key, uid)
        except PacsError:
            yield Finding(Problem.UNREADABLE_OBJECT, key, uid)
        else:
            if actual != sha256:
                yield Finding(Problem.CHECKSUM_MISMATCH, key, uid)
        if progress:
            progress(1)
    for key in objects.keys():
        if key not in known:
            yield Finding(Problem.ORPHAN_OBJECT, key)
