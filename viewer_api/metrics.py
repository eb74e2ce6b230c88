"""HTTP latency by route template, and the Prometheus exposition of every process.

The middleware is plain ASGI (no ``BaseHTTPMiddleware``), so streaming WADO responses
are neither buffered nor delayed; the latency covers the whole response body. The label
is the matched route's template (``/dicomweb/studies/{study}``), never the raw path, so
no UID reaches the metrics.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

from prometheus_client import REGISTRY, CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from storage import metrics

UNMATCHED = "unmatched"


class HttpMetrics:
    """ASGI middleware observing ``pacs_http_request_seconds{method,route,status}``."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        began = time.perf_counter()
        status = 500

        async def send_and_watch(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, send_and_watch)
        finally:
            route = scope.get("route")
            template = getattr(route, "path", None) or UNMATCHED
            metrics.instruments().http_seconds.labels(
                scope.get("method", ""), template, str(status)).observe(
                time.perf_counter() - began)


class StorageCollector(Collector):
    """``pacs_storage_used_bytes``, read from the index when Prometheus scrapes."""

    def __init__(self, used: Callable[[], int]) -> None:
        self._used = used

    def collect(self) -> Iterator[Any]:
        gauge = GaugeMetricFamily("pacs_storage_used_bytes",
                                  "Bytes of archived objects (all revisions)")
        gauge.add_metric([], float(self._used()))
        yield gauge


def exposition(storage_used: Callable[[], int]) -> bytes:
    """The text exposition format of every process's metrics plus storage used."""
    directory = metrics.multiprocess_dir()
    metrics.instruments()  # so that an idle process still exposes its metric families
    if directory is not None:
        registry = CollectorRegistry()
        MultiProcessCollector(registry, path=str(directory))
    else:
        registry = CollectorRegistry()
        registry.register(_Default())
    registry.register(StorageCollector(storage_used))
    return generate_latest(registry)


class _Default(Collector):
    """The in-process default registry, as one collector of a per-scrape registry."""

    def collect(self) -> Iterator[Any]:
        yield from REGISTRY.collect()
