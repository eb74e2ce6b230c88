"""The object-store port: five methods, as small as Orthanc's IStorageArea."""

from __future__ import annotations

from typing import BinaryIO, Protocol, runtime_checkable


@runtime_checkable
class ObjectStore(Protocol):
    """Opaque keys to immutable byte objects.

    Backends translate their transport errors into :class:`storage.errors.ObjectNotFound`,
    :class:`~storage.errors.StorageUnavailable` and :class:`~storage.errors.StorageFull`,
    so callers never see ``OSError`` or ``botocore`` exceptions.
    """

    url: str

    def put(self, key: str, data: BinaryIO, *, size: int | None = None) -> str:
        """Store ``data`` under ``key``; durable on return. Returns the SHA-256 hex digest."""
        ...

    def open(self, key: str) -> BinaryIO:
        """A readable stream of the object."""
        ...

    def read_range(self, key: str, start: int, end: int) -> bytes:
        """Bytes ``start`` (inclusive) to ``end`` (exclusive)."""
        ...

    def delete(self, key: str) -> None:
        """Remove the object; removing a missing key is not an error."""
        ...

    def exists(self, key: str) -> bool: ...

    def keys(self) -> list[str]:
        """Every key in the store (for ``pacs verify``)."""
        ...

    def check(self) -> None:
        """Raise :class:`~storage.errors.StorageUnavailable` unless the store answers."""
        ...
