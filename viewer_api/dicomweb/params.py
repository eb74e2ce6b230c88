"""DICOMweb request parameters: path UIDs, and QIDO-RS query parameters → :class:`Query`.

QIDO-RS (PS3.18 8.3.4 and 10.6) is translated into the same :class:`Query` that C-FIND
identifiers become (``pacs.identifier``), so both services share ONE matching
implementation, ``storage.index.query``. This module only checks the syntax of the
request and names the attributes; it never matches anything itself.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field

from pydicom.datadict import dictionary_VR, keyword_for_tag, tag_for_keyword

from storage.dicomio import is_valid_uid
from storage.errors import InvalidQuery
from storage.index.query import ATTRS, Level, Query, allowed

RESERVED = frozenset({"includefield", "limit", "offset", "fuzzymatching"})
"""The query parameters of PS3.18 8.3.4 that are not attribute matches."""

COMPUTED = frozenset({"RetrieveURL", "InstanceAvailability"})
"""Return attributes the DICOMweb layer fills in itself (they are not index values)."""

# Default return attributes, PS3.18 10.6.3.3 (Tables 10.6.3-3, -4, -5). Attributes kept only
# in stored headers (TimezoneOffsetFromUTC, PerformedProcedureStepStart*, Request Attributes
# Sequence) are left to ``includefield``: by default a search is answered from index
# columns alone, without reading one header per match. BitsAllocated is the exception: at
# instance level the instance's own header is already in the row.
STUDY_KEYS = ("StudyDate", "StudyTime", "AccessionNumber", "ModalitiesInStudy",
              "ReferringPhysicianName", "PatientName", "PatientID", "PatientBirthDate",
              "PatientSex", "StudyInstanceUID", "StudyID", "NumberOfStudyRelatedSeries",
              "NumberOfStudyRelatedInstances")
SERIES_KEYS = ("Modality", "SeriesDescription", "SeriesNumber", "SeriesInstanceUID",
               "NumberOfSeriesRelatedInstances")
INSTANCE_KEYS = ("SOPClassUID", "SOPInstanceUID", "InstanceNumber", "Rows", "Columns",
                 "BitsAllocated", "NumberOfFrames")

_TAG = re.compile(r"^[0-9A-Fa-f]{8}$")
_DATE = re.compile(r"^(\d{8}|\d{8}-|-\d{8}|\d{8}-\d{8})$")
_TIME = re.compile(r"^[\d.:]*-?[\d.:]*$")
_LIST_KINDS = {"uid", "modalities"}  # a comma-separated value is a list (PS3.18 8.3.4.1)


@dataclass(frozen=True)
class QidoRequest:
    """A translated search: the query for the archive, and the ``Warning`` texts to send."""

    query: Query
    warnings: list[str] = field(default_factory=list)


def check_uid(value: str, what: str) -> str:
    """A UID taken from a URL path, refused (400) unless well formed (PS3.5 9.1).

    Path UIDs are checked before they reach any query, path or key.
    """
    if not is_valid_uid(value):
        raise InvalidQuery(f"{what} in the URL is not a valid UID")
    return value


def keyword_of(attribute_id: str) -> str:
    """``PatientName`` or ``00100010`` → ``PatientName``; anything else is refused (400).

    PS3.18 8.3.4.1: an attribute is named by its keyword or its tag as eight hex digits.
    Sequence paths (``00081110.00081150``) are not supported.
    """
    if _TAG.match(attribute_id):
        keyword = keyword_for_tag(int(attribute_id, 16))
        if keyword:
            return str(keyword)
    elif tag_for_keyword(attribute_id) is not None:
        return attribute_id
    raise InvalidQuery(f"unknown query parameter or attribute {attribute_id!r}")


def _default_keys(level: Level, path: dict[str, str]) -> list[str]:
    """PS3.18 10.6.3.3: the entity's own defaults, plus those of every level above it
    whose UID is not already fixed by the resource path."""
    keys = list({Level.STUDY: STUDY_KEYS, Level.SERIES: SERIES_KEYS,
                 Level.IMAGE: INSTANCE_KEYS}[level])
    if level == Level.IMAGE and "SeriesInstanceUID" not in path:
        keys += SERIES_KEYS
    if level != Level.STUDY and "StudyInstanceUID" not in path:
        keys += STUDY_KEYS
    return keys


def _integer(name: str, values: list[str], minimum: int) -> int | None:
    if not values:
        return None
    if len(values) > 1:
        raise InvalidQuery(f"{name} is given more than once")
    try:
        number = int(values[0])
    except ValueError:
        number = minimum - 1
    if number < minimum:
        raise InvalidQuery(f"{name} must be an integer of at least {minimum}")
    return number


def _check_value(keyword: str, kind: str, value: str) -> None:
    """Refuse dates and times that are not DICOM DA / TM values or ranges (400)."""
    for alternative in value.split("\\"):
        alternative = alternative.strip()
        if not alternative or alternative == "*":
            continue
        if kind == "date" and not _DATE.match(alternative):
            raise InvalidQuery(f"{keyword} must be YYYYMMDD or a range YYYYMMDD-YYYYMMDD")
        if kind == "time" and not _TIME.match(alternative):
            raise InvalidQuery(f"{keyword} must be HHMMSS or a range of times")


def _includes(level: Level, values: Iterable[str]) -> list[str]:
    """``includefield`` values (repeatable, comma-separated, or ``all``; PS3.18 8.3.4.3)."""
    keys: list[str] = []
    for value in values:
        for item in (v.strip() for v in value.split(",")):
            if not item:
                continue
            if item == "all":
                keys += [k for k in ATTRS if allowed(level, k)]
            else:
                keys.append(keyword_of(item))
    return keys


def qido_query(level: Level, items: Iterable[tuple[str, str]],
               path: dict[str, str]) -> QidoRequest:
    """Translate a QIDO-RS request at ``level`` with its resource-path UIDs ``path``.

    Matching attributes become :attr:`Query.filters` and are also returned, as PS3.18
    10.6.3.3 requires; attributes the index cannot match are returned (from the stored
    header) but not matched, with a ``Warning`` (PS3.18 8.3.4.4), as C-FIND ignores
    optional keys it cannot match (PS3.4 C.2.2.1.3).

    Raises
    ------
    InvalidQuery
        Unknown parameter or attribute, malformed UID, date or number (HTTP 400).
    """
    grouped: dict[str, list[str]] = {}
    for name, value in items:
        grouped.setdefault(name, []).append(value)
    warnings: list[str] = []
    fuzzy = grouped.pop("fuzzymatching", [])
    if any(v.lower() not in ("true", "false") for v in fuzzy):
        raise InvalidQuery("fuzzymatching must be true or false")
    if any(v.lower() == "true" for v in fuzzy):
        warnings.append("The fuzzymatching parameter is not supported. "
                        "Only literal matching has been performed.")
    limit = _integer("limit", grouped.pop("limit", []), 1)
    offset = _integer("offset", grouped.pop("offset", []), 0) or 0
    keys = _default_keys(level, path) + _includes(level, grouped.pop("includefield", []))

    filters = dict(path)
    unmatched: list[str] = []
    for name, values in grouped.items():
        keyword = keyword_of(name)
        if keyword in filters or keyword in path:
            raise InvalidQuery(f"{keyword} is given more than once")
        attr = ATTRS.get(keyword)
        if attr is None or not allowed(level, keyword) or attr.kind == "count":
            keys.append(keyword)
            if any(v.strip() for v in values):
                unmatched.append(keyword)
            continue
        is_list = attr.kind in _LIST_KINDS or dictionary_VR(keyword) == "CS"
        if len(values) > 1 and not is_list:
            raise InvalidQuery(f"{keyword} is given more than once")
        value = "\\".join(values)
        if is_list:
            value = value.replace(",", "\\")
        _check_value(keyword, attr.kind, value)
        filters[keyword] = value
        keys.append(keyword)
    if unmatched:
        warnings.append("The following attributes are not supported for matching and "
                        "were ignored: " + ", ".join(unmatched))
    return_keys = [k for k in dict.fromkeys(keys) if k not in COMPUTED]
    query = Query(level, filters, return_keys=return_keys, limit=limit, offset=offset)
    return QidoRequest(query, warnings)


def resource_url(service: str, study: str, series: str = "", instance: str = "") -> str:
    """The WADO-RS URL of a study, series or instance (RetrieveURL, PS3.18 10.6.3.3)."""
    url = f"{service}/studies/{study}"
    if series:
        url += f"/series/{series}"
        if instance:
            url += f"/instances/{instance}"
    return url
