"""Received C-STORE data sets written where the object store can adopt them.

pynetdicom writes a chunked C-STORE data set (``STORE_RECV_CHUNKED_DATASET``) to a
``NamedTemporaryFile``; here that file is placed in the filesystem store's staging
directory and hashed while it is written, so the archive renames it into place and
need not read it again. (The DUL's own C-STORE receiver, :mod:`pacs.scp.store_receiver`,
does the same for the requests it takes.)
"""

from __future__ import annotations

import hashlib
import tempfile
import threading
from typing import Any

from pynetdicom import dimse_messages


def _staged_temporary_file(*args: Any, **kwargs: Any) -> Any:
    """pynetdicom's ``NamedTemporaryFile`` for a received C-STORE data set, placed in the
    receiving association's staging directory when it has one (see
    :func:`receive_into_staging`)."""
    staging = getattr(threading.current_thread(), "staging_dir", None)
    if staging is not None and "dir" not in kwargs:
        try:
            return ReceivedFile(tempfile.NamedTemporaryFile(*args, dir=staging, **kwargs))
        except OSError:
            # Object storage is failing: receive as usual; the archive's put will then
            # report it (0xA700) instead of this thread aborting the association.
            pass
    return tempfile.NamedTemporaryFile(*args, **kwargs)


class ReceivedFile:
    """The file pynetdicom writes a received data set into, hashed as it is written.

    pynetdicom only calls ``write`` (file meta and every data set fragment), ``file.flush``,
    ``close`` and ``name`` on it. The SHA-256 of the bytes written is known when the last
    fragment arrives (:func:`received_digest`), so the archive need not read the file
    again.

    Starting the file's writeback while it arrives (``sync_file_range`` every 256 KiB or
    1 MiB) was tried and measured on this path, when it cost ~12 ms of CPU per instance:
    more CPU per instance (~12 → ~16 ms at 4 associations, the kernel submitting smaller
    writes in our threads) and lower throughput, so here the fsync alone writes the file
    out. The DUL's own receiver, at ~4 ms per instance, gains from it and does it
    (:func:`storage.objects.filesystem.start_writeback`).
    """

    def __init__(self, wrapped: Any) -> None:
        self._wrapped = wrapped
        self.file = wrapped.file
        self.name = wrapped.name
        self._digest = hashlib.sha256()

    def write(self, data: bytes) -> int:
        self._digest.update(data)
        return int(self._wrapped.write(data))

    def close(self) -> None:
        self._wrapped.close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._wrapped, name)

    def hexdigest(self) -> str:
        return self._digest.hexdigest()


def received_digest(request: Any) -> str | None:
    """SHA-256 of the data set file of a received C-STORE request, if a
    :class:`ReceivedFile` computed it while it arrived (else ``None``)."""
    received = getattr(request, "_dataset_file", None)
    return received.hexdigest() if isinstance(received, ReceivedFile) else None


def receive_into_staging() -> None:
    """Let acceptor associations write received data sets into the object store.

    pynetdicom writes a chunked C-STORE data set (``STORE_RECV_CHUNKED_DATASET``) to a
    ``NamedTemporaryFile`` in the system temporary directory, which the archive then
    copies into object storage. Its module's reference is wrapped once per process so
    that, in the DUL thread of an :class:`EventDrivenDUL` given a ``staging_dir`` (the
    filesystem store's :meth:`~storage.objects.filesystem.FilesystemStore.staging_dir`),
    the file is created there instead: the archive then renames it into place (written
    once, not twice) and takes its digest from :class:`ReceivedFile`. Any other thread
    gets pynetdicom's behaviour.
    """
    if dimse_messages.NamedTemporaryFile is not _staged_temporary_file:
        dimse_messages.NamedTemporaryFile = _staged_temporary_file  # type: ignore[assignment]
