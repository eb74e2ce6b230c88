"""The slice of the settings that the storage layer needs."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class StorageSettings:
    """Where the index and the objects live, and how carefully they are written.

    Attributes
    ----------
    database_url : SQLAlchemy URL of the metadata index (SQLite or PostgreSQL).
    storage_url : ``file://PATH`` or ``s3://BUCKET/PREFIX``.
    s3_endpoint_url : custom S3 endpoint (MinIO, Ceph, moto); ``None`` for AWS.
    fsync : flush objects to stable storage before a store is acknowledged.
    find_limit : the most matches one query returns (C-FIND, QIDO-RS).
    sqlite_synchronous : durability of a SQLite index's commits: ``FULL`` (each commit is
        on disk before the caller goes on; the WAL is synced after the commit, see
        storage/index/sqlite_writes.py), ``NORMAL`` (synced at checkpoints only) or ``EXTRA``.
    """

    database_url: str
    storage_url: str
    s3_endpoint_url: str | None = None
    fsync: bool = True
    find_limit: int = 10_000
    sqlite_synchronous: str = "FULL"
