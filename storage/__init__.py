"""Object storage, the metadata index and the archive service built on them."""

from storage.settings import StorageSettings

__all__ = ["StorageSettings"]
