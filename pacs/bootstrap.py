"""The composition root: settings → services → listeners. The only module that wires all.

``pacs serve`` runs the HTTP app in the main process and the DICOM listener either in a
thread of that process (one worker) or in several worker processes: one Python process is
bound by the GIL to about a hundred instances a second. With workers, the main process
owns the DICOM port and hands each connection to the least-busy worker (:mod:`pacs.handoff`).
"""

from __future__ import annotations

import gc
import logging
import multiprocessing
import signal
import socket
import sys
import time
from io import BytesIO
from typing import Any

from pydicom.dataset import Dataset
from pynetdicom.dsutils import decode, encode
from pynetdicom.sop_class import StudyRootQueryRetrieveInformationModelFind

from pacs.ae import DicomSettings, configure_library, start_dicom
from pacs.handoff import Dispatcher, worker_channel
from pacs.hl7_listener import Hl7Settings, start_hl7
from pacs.identifier import to_query
from pacs.settings import Settings
from ris.services import Services, build_services
from storage import metrics
from storage.index import prepared
from storage.index.migrate import upgrade
from storage.origin import Origin

log = logging.getLogger("pacs")


def configure_logging(level: int = logging.INFO) -> None:
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("pynetdicom").setLevel(logging.WARNING)
    # pydicom reports odd values as warnings that quote them: keep them out of the console.
    logging.captureWarnings(True)
    logging.getLogger("py.warnings").setLevel(logging.ERROR)


def prepare(settings: Settings) -> Services:
    """Library globals, data directory, migrations, services: everything a process needs."""
    configure_library()
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    upgrade(settings.storage().database_url)
    return build_services(settings.storage(), settings.auth_settings(), settings.reports(),
                          cost_model=settings.cost_model())


def first_admin(services: Services, settings: Settings) -> None:
    """On the first start (no user yet) create ``admin`` (SPEC.md "Users, access and audit").

    The password is ``PACS_ADMIN_PASSWORD``, or a random one printed once to standard
    output, never to the log.
    """
    generated = services.accounts.ensure_admin(settings.admin_password,
                                               Origin(channel="cli", username="pacs serve"))
    if generated:
        print(f"Created user 'admin' with password: {generated}\n"
              "This is shown once; change it with: pacs user passwd admin", flush=True)
    if not settings.auth:
        log.warning("HTTP authentication is OFF (PACS_AUTH=off): every caller is admin%s",
                    "" if settings.http_host in ("127.0.0.1", "localhost", "::1")
                    else f", and the HTTP listener is on {settings.http_host}")


def dicom_settings(settings: Settings) -> DicomSettings:
    return DicomSettings(ae_title=settings.ae_title, host=settings.dicom_host,
                         port=settings.dicom_port, max_pdu=settings.dicom_max_pdu,
                         max_associations=settings.dicom_max_associations,
                         allow_unknown_ae=settings.dicom_allow_unknown_ae,
                         tls_cert=settings.dicom_tls_cert, tls_key=settings.dicom_tls_key,
                         tls_ca=settings.dicom_tls_ca)


def warm_up(services: Services) -> None:
    """Make the first C-FIND of a new DICOM process as fast as the next ones
    (:func:`storage.index.prepared.warm`); a failure here only costs that speed."""
    started = time.perf_counter()
    try:
        identifier = Dataset()
        identifier.QueryRetrieveLevel = "STUDY"
        for keyword in prepared.STUDY_RETURN_KEYS:
            setattr(identifier, keyword, "")
        encoded = encode(identifier, True, True)  # as a peer sends it, read as pynetdicom does
        to_query(decode(BytesIO(encoded), True, True), StudyRootQueryRetrieveInformationModelFind)
        shapes = prepared.warm(services.db, cap=services.archive.find_limit)
        metrics.instruments()  # prometheus_client is imported on first use: 20 ms
    except Exception as exc:  # e.g. index unreachable at start: queries will say so
        log.warning("query warm-up skipped: %s", type(exc).__name__)
        return
    log.debug("query warm-up: %d shapes in %.0f ms", shapes,
              (time.perf_counter() - started) * 1000)


def _dicom_worker(settings_json: str, ready: Any, channel: socket.socket) -> None:
    """Body of one DICOM receiving process (spawned, so nothing is shared by fork).

    It takes its connections from the dispatcher at the other end of ``channel``.
    """
    configure_logging()
    settings = Settings.model_validate_json(settings_json)
    configure_library()
    metrics.configure_multiprocess(settings.metrics_dir())
    services = build_services(settings.storage(), settings.auth_settings(), settings.reports(),
                              cost_model=settings.cost_model())
    warm_up(services)
    freeze_heap()
    server = start_dicom(services, dicom_settings(settings), handoff=channel)
    ready.set()
    stop = server.dispatcher_gone  # type: ignore[attr-defined]
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    parent = multiprocessing.parent_process()
    while not stop.wait(1.0):
        if parent is not None and not parent.is_alive():
            break  # never outlive `pacs serve`
    server.shutdown()
    services.close()


def start_dicom_workers(settings: Settings, dispatcher: Dispatcher) -> list[Any]:
    """Spawn the DICOM worker processes, each joined to ``dispatcher`` by its channel."""
    ctx = multiprocessing.get_context("spawn")
    procs = []
    for n in range(settings.worker_count()):
        ready = ctx.Event()
        ours, theirs = worker_channel()
        proc = ctx.Process(target=_dicom_worker,
                           args=(settings.model_dump_json(), ready, theirs),
                           name=f"pacs-dicom-{n}", daemon=True)
        proc.start()
        theirs.close()  # the worker has its copy; ours must go, or its death is not seen
        dispatcher.add(proc.name, ours)
        procs.append((proc, ready))
    for proc, ready in procs:
        if not ready.wait(60):
            raise RuntimeError(f"DICOM worker {proc.name} did not start")
    return [p for p, _ in procs]


def freeze_heap() -> None:
    """Move what start-up built (modules, dictionaries, prepared statements) out of the
    garbage collector's sight (:func:`gc.freeze`), after collecting its garbage.

    Those objects live as long as the process. Without this each full collection
    walks them all again (115-140 ms in a DICOM worker); with it, only what was made
    since.
    """
    gc.collect()
    gc.freeze()


def serve(settings: Settings) -> None:
    """Run every listener until SIGINT/SIGTERM."""
    import uvicorn

    from viewer_api import create_app

    configure_logging()
    # uvicorn shuts down gracefully on SIGTERM, then raises the signal again once it has
    # restored this handler: turn that into SystemExit so the clean-up below runs.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    # Every process of this node writes its metrics under the data folder (emptied at each
    # start, as prometheus_client's multi-process mode asks); /metrics sums them.
    metrics.configure_multiprocess(settings.metrics_dir(), clean=True)
    services = prepare(settings)
    first_admin(services, settings)
    workers = settings.worker_count()
    procs: list[Any] = []
    server = None
    dispatcher = None
    if workers > 1:
        dispatcher = Dispatcher.bind(settings.dicom_host, settings.dicom_port)
        procs = start_dicom_workers(settings, dispatcher)
        dispatcher.start()
    else:
        warm_up(services)
        server = start_dicom(services, dicom_settings(settings))
    freeze_heap()
    log.info("DICOM listening on port %d as %s (%d process%s)", settings.dicom_port,
             settings.ae_title, workers, "es" if workers > 1 else "")
    log.info("index %s; objects %s", services.db.dialect, services.objects.url)
    tls: dict[str, Any] = {}
    if settings.http_tls_cert is not None:
        tls = {"ssl_certfile": str(settings.http_tls_cert),
               "ssl_keyfile": str(settings.http_tls_key)}
    hl7 = None
    try:
        hl7 = start_hl7(services.hl7, Hl7Settings(host=settings.dicom_host,
                                                  port=settings.hl7_port))
        log.info("HL7 (MLLP) listening on port %d", settings.hl7_port)
        log.info("HTTP%s on %s:%d", "S" if tls else "", settings.http_host, settings.http_port)
        app = create_app(services, render_cache=settings.render_cache())
        uvicorn.run(app, host=settings.http_host, port=settings.http_port, log_level="warning",
                    **tls)
    finally:
        if hl7 is not None:
            hl7.shutdown()
        if server is not None:
            server.shutdown()
        if dispatcher is not None:
            dispatcher.stop()
        for proc in procs:
            proc.terminate()
        for proc in procs:
            proc.join(10)
            if proc.pid is not None:
                metrics.process_exited(proc.pid)
        services.close()
        log.info("stopped")
