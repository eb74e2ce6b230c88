"""A disk cache of derived bytes (rendered previews, thumbnails), keyed by an opaque hash.

Why here and not in ``viewer_api``: the cache is a small store of files on the local disk,
written with the same temp-file + rename discipline as :mod:`storage.objects.filesystem`,
and its settings slice (:class:`CacheSettings`) must be importable by the root settings in
``pacs.settings`` without ``pacs`` importing ``viewer_api`` (the import contract keeps the
two adapters independent). It knows nothing of DICOM or HTTP: callers give it the parts of
a key (the object's identity and the normalised render parameters) and bytes.

What it promises:

- **No patient data on disk names.** A key is the SHA-256 of its parts; the file is
  ``<directory>/<h[:2]>/<h>``.
- **Invalidation by identity.** Callers put the object's key (a new revision of an
  instance is a new object with a new key, see :mod:`storage.index.writer`) in the key
  parts, so a revised instance never meets an old rendering.
- **Atomic entries.** A reader sees a whole file or none: each entry is written to a
  temporary file in the same directory and renamed over its name (``os.replace``).
- **Bounded size.** Above ``max_bytes`` the least recently used entries (by mtime, which a
  hit refreshes) are removed until the cache is under 80 % of the cap.
- **Best effort.** A cache that cannot read or write never fails a request; it logs and
  answers "miss".
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

_LOW_WATER = 0.8  # eviction stops when the cache is under this share of the cap


@dataclass(frozen=True)
class CacheSettings:
    """Where the rendered-image cache lives and how big it may grow.

    Attributes
    ----------
    directory : the cache root, e.g. ``<data_dir>/cache/rendered``.
    max_bytes : the size cap; ``0`` turns the cache off.
    """

    directory: Path
    max_bytes: int = 1 << 30


def cache_key(*parts: object) -> str:
    """The opaque key of ``parts`` (JSON-serialisable values): a SHA-256 hex digest.

    Hashing keeps UIDs and anything else the parts hold out of file names.
    """
    text = json.dumps(parts, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


class DiskCache:
    """Bytes on the local disk under opaque keys, with a size cap and LRU-ish eviction."""

    def __init__(self, settings: CacheSettings) -> None:
        self.directory = Path(settings.directory)
        self.max_bytes = settings.max_bytes
        self._lock = threading.Lock()
        self._size: int | None = None  # bytes on disk; measured on first write

    @property
    def enabled(self) -> bool:
        return self.max_bytes > 0

    def _path(self, key: str) -> Path:
        if len(key) != 64 or any(c not in "0123456789abcdef" for c in key):
            raise ValueError("cache keys are SHA-256 hex digests (see cache_key)")
        return self.directory / key[:2] / key

    def get(self, key: str) -> bytes | None:
        """The bytes stored under ``key``, or ``None`` (absent, empty, unreadable)."""
        if not self.enabled:
            return None
        path = self._path(key)
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            return None
        except OSError as exc:
            log.warning("render cache: cannot read an entry (%s)", type(exc).__name__)
            return None
        if not data:
            return None  # a torn write after a power loss: treat as a miss
        try:
            os.utime(path)  # "recently used" for eviction
        except OSError:
            pass
        return data

    def put(self, key: str, data: bytes) -> None:
        """Store ``data`` under ``key`` atomically (temp file + rename), then keep the cap."""
        if not self.enabled or len(data) > self.max_bytes:
            return
        path = self._path(key)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
            try:
                with os.fdopen(fd, "wb") as fh:
                    fh.write(data)
                try:
                    old = path.stat().st_size
                except FileNotFoundError:
                    old = 0
                os.replace(tmp, path)
            except BaseException:
                Path(tmp).unlink(missing_ok=True)
                raise
        except OSError as exc:
            log.warning("render cache: cannot write an entry (%s)", type(exc).__name__)
            return
        with self._lock:
            if self._size is None:
                self._size = self._measure()
            else:
                self._size += len(data) - old
            over = self._size > self.max_bytes
        if over:
            self.evict()

    def _entries(self) -> list[tuple[float, int, Path]]:
        """(mtime, size, path) of every entry; temporary files are left to their writers."""
        out: list[tuple[float, int, Path]] = []
        if not self.directory.is_dir():
            return out
        for sub in self.directory.iterdir():
            if not sub.is_dir():
                continue
            for entry in os.scandir(sub):
                if entry.name.startswith(".tmp-"):
                    continue
                try:
                    st = entry.stat()
                except FileNotFoundError:
                    continue
                out.append((st.st_mtime, st.st_size, Path(entry.path)))
        return out

    def _measure(self) -> int:
        return sum(size for _, size, _ in self._entries())

    def size(self) -> int:
        """Bytes the entries take on disk now (a directory scan)."""
        return self._measure()

    def evict(self) -> None:
        """Remove the least recently used entries until under 80 % of the cap."""
        with self._lock:
            entries = sorted(self._entries())
            total = sum(size for _, size, _ in entries)
            target = int(self.max_bytes * _LOW_WATER)
            for _, size, path in entries:
                if total <= target:
                    break
                try:
                    path.unlink()
                except FileNotFoundError:
                    pass
                except OSError as exc:
                    log.warning("render cache: cannot evict an entry (%s)", type(exc).__name__)
                    continue
                total -= size
            self._size = total
