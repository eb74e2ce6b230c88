"""HL7 v2.5.1 ORU^R01 for a signed report, sent over MLLP in the background with retry.

The message carries the report as OBX TX lines (HL7 v2.5.1 7.4), with OBR-25 / OBX-11
result status F (final) or C (corrected: amended by an addendum). MSH-18 declares
``UNICODE UTF-8`` so Vietnamese text goes through unchanged; only the HL7 delimiters are
escaped (HL7 v2.5.1 2.7.4). Sending never blocks signing: messages queue to one thread
that retries with exponential back-off and reports each outcome through a callback, so
a failure is logged and visible on the report (``oru_status``, ``oru_error``).
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

import hl7
from hl7.client import MLLPClient

log = logging.getLogger(__name__)

SEPARATORS = "|^~\\&"


def escape(value: str) -> str:
    """Escape HL7 delimiters in a field value (HL7 v2.5.1 2.7.4); keep everything else."""
    out = value.replace("\\", "\\E\\").replace("|", "\\F\\").replace("^", "\\S\\")
    out = out.replace("&", "\\T\\").replace("~", "\\R\\")
    return out.replace("\r\n", "\n").replace("\r", "\n")


@dataclass(frozen=True)
class OruContent:
    report_id: int
    patient_id: str
    patient_name: str
    birth_date: str
    sex: str
    accession_number: str
    study_uid: str
    study_description: str
    study_datetime: str
    status: str  # "F" final, "C" corrected (amended)
    signer: str
    signed_at: datetime
    text: str
    addenda: tuple[tuple[str, str, datetime], ...] = ()  # (text, signer, signed_at)


def _person(dicom_pn: str) -> str:
    """A DICOM PN (family^given^middle^prefix^suffix, PS3.5 6.2) as HL7 XPN components."""
    family, given, middle, prefix, suffix = ([*dicom_pn.split("=")[0].split("^"), "", "", "",
                                              "", ""])[:5]
    return "^".join(escape(p) for p in (family, given, middle, suffix, prefix)).rstrip("^")


def _segment(*fields: str) -> str:
    return "|".join(fields)


def build_oru(content: OruContent, *, control_id: str, sending_app: str = "FILMLESS",
              sending_facility: str = "PACS") -> str:
    """The ORU^R01 message text, segments separated by carriage returns."""
    now = datetime.now().strftime("%Y%m%d%H%M%S")
    signed = content.signed_at.strftime("%Y%m%d%H%M%S")
    msh = ["MSH", SEPARATORS[1:], sending_app, sending_facility, "", "", now, "",
           "ORU^R01^ORU_R01", control_id, "P", "2.5.1", "", "", "", "", "", "UNICODE UTF-8"]
    segments = [
        "|".join(msh),
        _segment("PID", "1", "", f"{escape(content.patient_id)}^^^^PI", "",
                 _person(content.patient_name), "", content.birth_date, content.sex),
        _segment("OBR", "1", escape(content.accession_number),
                 escape(content.accession_number),
                 f"{escape(content.study_uid)}^{escape(content.study_description)}",
                 "", "", content.study_datetime, "", "", "", "", "", "", "", "", "", "", "",
                 "", "", "", signed, "", "", content.status, "", "", "", "", "", "",
                 escape(content.signer)),
    ]
    lines: list[tuple[str, str]] = [(line, content.status) for line in
                                    content.text.splitlines() or [""]]
    for text, signer, at in content.addenda:
        lines.append((f"ADDENDUM {at:%Y-%m-%d %H:%M} ({signer}):", "C"))
        lines.extend((line, "C") for line in text.splitlines() or [""])
    for n, (line, status) in enumerate(lines, start=1):
        segments.append(_segment("OBX", str(n), "TX", "18748-4^Diagnostic Imaging Report^LN",
                                 "1", escape(line), "", "", "", "", "", status))
    return "\r".join(segments) + "\r"


Outcome = Callable[[int, str, int, str], None]
"""Called as ``outcome(report_id, status, attempts, error)``; status ``sent``, ``retrying``
or ``failed``."""


class OruSender:
    """One background thread delivering ORU messages to the configured receiver."""

    def __init__(self, host: str, port: int, outcome: Outcome, *, attempts: int = 5,
                 first_delay: float = 1.0, timeout: float = 10.0) -> None:
        self.host, self.port = host, port
        self._outcome = outcome
        self._attempts = max(1, attempts)
        self._first_delay = first_delay
        self._timeout = timeout
        self._queue: queue.Queue[tuple[int, str] | None] = queue.Queue()
        self._thread = threading.Thread(target=self._run, name="hl7-oru", daemon=True)
        self._idle = threading.Condition()
        self._pending = 0
        self._stopped = threading.Event()
        self._thread.start()

    def submit(self, report_id: int, message: str) -> None:
        with self._idle:
            self._pending += 1
        self._queue.put((report_id, message))

    def flush(self, timeout: float = 30.0) -> bool:
        """Wait until every submitted message is delivered or given up (tests, shutdown)."""
        with self._idle:
            return self._idle.wait_for(lambda: self._pending <= 0, timeout=timeout)

    def close(self) -> None:
        self._stopped.set()
        self._queue.put(None)

    def _run(self) -> None:
        while (item := self._queue.get()) is not None:
            report_id, message = item
            try:
                self._deliver(report_id, message)
            except Exception:  # the sender thread must survive anything
                log.exception("ORU for report %d: unexpected error", report_id)
            with self._idle:
                self._pending -= 1
                self._idle.notify_all()

    def _deliver(self, report_id: int, message: str) -> None:
        delay = self._first_delay
        for attempt in range(1, self._attempts + 1):
            try:
                self._send_once(message)
            except (OSError, ValueError, hl7.ParseException) as exc:
                error = f"{type(exc).__name__}: {exc}"[:255]
                last = attempt == self._attempts
                log.warning("ORU for report %d to %s:%d, attempt %d/%d failed: %s", report_id,
                            self.host, self.port, attempt, self._attempts, error)
                self._outcome(report_id, "failed" if last else "retrying", attempt, error)
                if last or self._stopped.wait(delay):
                    return
                delay *= 2
            else:
                log.info("ORU for report %d delivered to %s:%d", report_id, self.host, self.port)
                self._outcome(report_id, "sent", attempt, "")
                return

    def _send_once(self, message: str) -> None:
        with MLLPClient(self.host, self.port) as client:
            client.socket.settimeout(self._timeout)
            ack = client.send_message(message)
        text = ack.decode("utf-8", "replace") if isinstance(ack, bytes) else str(ack)
        text = text.strip("\x0b\x1c\r\n")
        if not text:
            raise ValueError("no acknowledgement")
        parsed = hl7.parse(text)
        code = str(parsed.segment("MSA")[1])
        if code not in ("AA", "CA"):
            raise ValueError(f"receiver answered {code}")
