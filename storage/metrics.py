"""Prometheus instruments of the archive, shared by every process of a node.

The DICOM listener runs in several processes (``pacs.bootstrap``), so the instruments use
prometheus_client's documented multi-process mode: the composition root calls
:func:`configure_multiprocess` with a directory before any instrument is created, every
process writes its samples there, and ``/metrics`` collects them all
(``prometheus_client.multiprocess.MultiProcessCollector``). Without it (tests, one
process) the instruments live in the default in-process registry.

Instruments are created on first use, never at import, so the mode can still be chosen.
Labels carry operations, outcomes, error codes and route templates: never UIDs or names.
"""

from __future__ import annotations

import os
import shutil
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
                   10.0, 30.0, 60.0)

_lock = threading.Lock()
_instruments: Instruments | None = None
_multiprocess_dir: Path | None = None


@dataclass(frozen=True)
class Instruments:
    associations: Any
    associations_active: Any
    instances_stored: Any
    bytes_stored: Any
    operation_seconds: Any
    errors: Any
    http_seconds: Any


def configure_multiprocess(directory: Path, *, clean: bool = False) -> None:
    """Share metrics between the processes of this node through ``directory``.

    Called by the composition root before anything is measured; ``clean`` empties the
    directory (the parent does it once at start, as the library asks). Child processes
    inherit the environment variable prometheus_client reads.
    """
    global _multiprocess_dir
    if clean and directory.exists():
        shutil.rmtree(directory)
    directory.mkdir(parents=True, exist_ok=True)
    directory = directory.resolve()
    os.environ[MULTIPROC_ENV] = str(directory)
    _multiprocess_dir = directory
    import prometheus_client.values as values

    values.ValueClass = values.get_value_class()


def multiprocess_dir() -> Path | None:
    return _multiprocess_dir


def process_exited(pid: int) -> None:
    """Drop the live gauges of a finished process (multi-process mode only)."""
    if _multiprocess_dir is not None:
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(pid, str(_multiprocess_dir))


def instruments() -> Instruments:
    global _instruments
    if _instruments is None:
        with _lock:
            if _instruments is None:
                _instruments = _create()
    return _instruments


def _create() -> Instruments:
    from prometheus_client import Counter, Gauge, Histogram

    return Instruments(
        associations=Counter("pacs_dicom_associations", "DICOM associations by event",
                             ["event"]),
        associations_active=Gauge("pacs_dicom_associations_active",
                                  "DICOM associations open now", multiprocess_mode="livesum"),
        instances_stored=Counter("pacs_instances_stored", "Instances received, by outcome",
                                 ["outcome"]),
        bytes_stored=Counter("pacs_stored_bytes", "Bytes of instances newly archived"),
        operation_seconds=Histogram("pacs_archive_operation_seconds",
                                    "Archive store/find/locate latency", ["operation"],
                                    buckets=LATENCY_BUCKETS),
        errors=Counter("pacs_errors", "Refused or failed operations by error code",
                       ["operation", "code"]),
        http_seconds=Histogram("pacs_http_request_seconds", "HTTP latency by route template",
                               ["method", "route", "status"], buckets=LATENCY_BUCKETS),
    )


@contextmanager
def timed(operation: str) -> Iterator[None]:
    """Time ``operation`` and count it as an error, by code, if it raises."""
    began = time.perf_counter()
    try:
        yield
    except Exception as exc:
        instruments().errors.labels(operation, getattr(exc, "code", "unexpected")).inc()
        raise
    finally:
        instruments().operation_seconds.labels(operation).observe(time.perf_counter() - began)


def observe(operation: str, seconds: float, error: BaseException | None = None) -> None:
    """Record one ``operation`` that took ``seconds``, as :func:`timed` does, for a caller
    that records it later than it happened (a store's metrics wait until its sender has
    been answered, :meth:`storage.archive.Archive.store_deferred`)."""
    m = instruments()
    if error is not None:
        m.errors.labels(operation, getattr(error, "code", "unexpected")).inc()
    m.operation_seconds.labels(operation).observe(seconds)


def stored(outcome: str, size: int) -> None:
    m = instruments()
    m.instances_stored.labels(outcome).inc()
    if outcome != "duplicate":
        m.bytes_stored.inc(size)
