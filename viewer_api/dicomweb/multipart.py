"""``multipart/related`` (RFC 2387) for DICOMweb: a streaming writer and a streaming reader.

WADO-RS answers and STOW-RS requests carry one DICOM object per part (PS3.18 8.6.1.2).
Studies can be gigabytes, so neither side ever holds a whole message: the writer yields
part headers and object chunks as it reads them, the reader splits a byte stream fed in
arbitrary chunks into part headers and body pieces. python-multipart only parses
``multipart/form-data``, hence this small splitter (RFC 2046 5.1.1 boundary rules).
"""

from __future__ import annotations

import enum
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import BinaryIO

CHUNK = 1 << 20
"""Bytes read from object storage per step while streaming a part."""

_MAX_HEADER_BYTES = 16 * 1024


class MultipartError(ValueError):
    """The body does not follow RFC 2046 multipart syntax (reported as 400)."""


def parse_media_type(value: str) -> tuple[str, dict[str, str]]:
    """``'multipart/related; type="application/dicom"'`` → ``('multipart/related', {...})``.

    Type and parameter names are case-insensitive (RFC 9110 8.3.1); quoted values are
    unquoted.
    """
    media, *params = [p.strip() for p in value.split(";")]
    parsed: dict[str, str] = {}
    for param in params:
        name, _, raw = param.partition("=")
        if name.strip():
            parsed[name.strip().lower()] = raw.strip().strip('"')
    return media.lower(), parsed


def media_ranges(accept: str | None) -> list[tuple[str, dict[str, str]]]:
    """The media ranges of an ``Accept`` header the client accepts (``q=0`` dropped)."""
    ranges = []
    for item in (accept or "").split(","):
        if not item.strip():
            continue
        media, params = parse_media_type(item)
        try:
            if float(params.get("q", "1")) <= 0:
                continue
        except ValueError:
            pass
        ranges.append((media, params))
    return ranges


def new_boundary() -> str:
    return uuid.uuid4().hex


def write_parts(parts: Iterable[tuple[str, int, BinaryIO]], boundary: str) -> Iterator[bytes]:
    """Encode ``(content type, size, open file)`` parts as a multipart/related body.

    ``parts`` should open each file lazily (a generator), so one file is open at a time.
    Each file is read in :data:`CHUNK` pieces and closed after its part, so memory stays
    flat whatever the number and size of parts (PS3.18 8.6.1.2). ``Content-Length`` per
    part lets clients allocate exactly.
    """
    delimiter = f"--{boundary}\r\n".encode("ascii")
    # Small pieces (part headers, objects smaller than a chunk) are joined into chunks of
    # about CHUNK bytes: every piece handed to the server costs a trip between its event
    # loop and the thread reading files, which for a CT study of 0.5 MB slices was a
    # large share of the time. At most about two chunks are held.
    pending: list[bytes] = []
    held = 0
    for content_type, size, fh in parts:
        with fh:
            pending.append(delimiter + (f"Content-Type: {content_type}\r\n"
                                        f"Content-Length: {size}\r\n\r\n").encode("ascii"))
            while chunk := fh.read(CHUNK):
                pending.append(chunk)
                held += len(chunk)
                if held >= CHUNK:
                    yield b"".join(pending)
                    pending, held = [], 0
        pending.append(b"\r\n")
    pending.append(f"--{boundary}--\r\n".encode("ascii"))
    yield b"".join(pending)


class _State(enum.Enum):
    PREAMBLE = enum.auto()
    DELIMITER = enum.auto()
    HEADERS = enum.auto()
    BODY = enum.auto()
    EPILOGUE = enum.auto()


@dataclass(frozen=True)
class PartStart:
    """A new part begins; its headers, names lower-cased."""

    headers: dict[str, str]


@dataclass(frozen=True)
class PartData:
    """A piece of the current part's body."""

    data: bytes


Event = PartStart | PartData


class RelatedReader:
    """Incremental multipart splitter: :meth:`feed` chunks, get :class:`Event` s back.

    The body is scanned for ``CRLF--boundary`` (RFC 2046 5.1.1); the stream is treated as
    if a CRLF preceded it, so a first boundary at the very start is recognised. Only the
    last ``len(delimiter) - 1`` bytes are held back between feeds, so memory is bounded by
    the chunk size, never by the part size.
    """

    def __init__(self, boundary: str) -> None:
        if not boundary or len(boundary) > 200:
            raise MultipartError("boundary is missing or longer than 200 characters")
        self._delimiter = b"\r\n--" + boundary.encode("latin-1")
        self._buf = bytearray(b"\r\n")
        self._state = _State.PREAMBLE
        self.parts = 0

    @property
    def finished(self) -> bool:
        return self._state is _State.EPILOGUE

    def feed(self, data: bytes) -> list[Event]:
        """Consume ``data``; return the events it completes, in order."""
        if self._state is _State.EPILOGUE:
            return []  # the epilogue is ignored (RFC 2046 5.1.1)
        self._buf += data
        events: list[Event] = []
        while self._step(events):
            pass
        return events

    def _step(self, events: list[Event]) -> bool:
        """Advance one state if the buffer allows; ``False`` when more input is needed."""
        buf, delim = self._buf, self._delimiter
        if self._state in (_State.PREAMBLE, _State.BODY):
            at = buf.find(delim)
            if at < 0:
                keep = len(delim) - 1
                if len(buf) > keep:
                    if self._state is _State.BODY:
                        events.append(PartData(bytes(buf[:-keep])))
                    del buf[:-keep]
                return False
            if self._state is _State.BODY and at:
                events.append(PartData(bytes(buf[:at])))
            del buf[: at + len(delim)]
            self._state = _State.DELIMITER
            return True
        if self._state is _State.DELIMITER:
            if len(buf) < 2:
                return False
            if buf.startswith(b"--"):
                self._state = _State.EPILOGUE
                buf.clear()
                return False
            end = buf.find(b"\r\n")
            if end < 0:
                if len(buf) > 1024:
                    raise MultipartError("boundary line is not terminated")
                return False
            if buf[:end].strip(b" \t"):  # only transport padding may follow a boundary
                raise MultipartError("boundary is followed by unexpected characters")
            del buf[: end + 2]
            self._state = _State.HEADERS
            return True
        if self._state is _State.HEADERS:
            if buf.startswith(b"\r\n"):
                del buf[:2]
                events.append(PartStart({}))
            else:
                end = buf.find(b"\r\n\r\n")
                if end < 0:
                    if len(buf) > _MAX_HEADER_BYTES:
                        raise MultipartError("part headers are too long")
                    return False
                events.append(PartStart(_headers(bytes(buf[:end]))))
                del buf[: end + 4]
            self.parts += 1
            self._state = _State.BODY
            return True
        return False

    def close(self) -> None:
        """The body has ended: it must have reached its closing boundary."""
        if self._state is not _State.EPILOGUE:
            raise MultipartError("body ended before the closing boundary")


def _headers(block: bytes) -> dict[str, str]:
    headers: dict[str, str] = {}
    for line in block.decode("latin-1").split("\r\n"):
        name, sep, value = line.partition(":")
        if not sep:
            raise MultipartError("malformed part header line")
        headers[name.strip().lower()] = value.strip()
    return headers
