"""C-FIND / C-MOVE / C-GET identifiers → :class:`storage.index.query.Query` (PS3.4 C.4).

A C-FIND's identifier used to be decoded by pydicom (``event.identifier``) and then
walked element by element: each element's conversion (raw element, value hooks,
validation) made that about 0.4 ms of CPU for a viewer's 15-key study query, as much as
running the index query itself. :func:`query_from_bytes` reads a plain identifier (text
values in the default repertoire, Implicit or Explicit VR Little Endian) straight from its
bytes into the same :class:`Query`; anything else returns ``None`` and takes pydicom's path
(:func:`to_query`).
"""

from __future__ import annotations

import re
import struct
from functools import lru_cache

from pydicom.datadict import dictionary_VR, keyword_for_tag
from pydicom.dataset import Dataset
from pydicom.multival import MultiValue
from pynetdicom import sop_class

from storage.errors import InvalidQuery
from storage.index.match import LONG_LENGTH_VRS, SINGLE_VALUED_VRS
from storage.index.query import Level, Query

PATIENT_ROOT = {
    sop_class.PatientRootQueryRetrieveInformationModelFind,
    sop_class.PatientRootQueryRetrieveInformationModelMove,
    sop_class.PatientRootQueryRetrieveInformationModelGet,
}
STUDY_ROOT = {
    sop_class.StudyRootQueryRetrieveInformationModelFind,
    sop_class.StudyRootQueryRetrieveInformationModelMove,
    sop_class.StudyRootQueryRetrieveInformationModelGet,
}
_SKIP = {"QueryRetrieveLevel", "SpecificCharacterSet"}
# Text VRs read from their bytes (PS3.5 6.2); numbers, binary VRs and sequences go through
# pydicom, as does IS/DS unless empty.
_TEXT_VRS = frozenset({"AE", "AS", "CS", "DA", "DT", "LO", "LT", "PN", "SH", "ST", "TM", "UC",
                       "UI", "UR", "UT"})
_EMPTY_ONLY_VRS = frozenset({"IS", "DS"})
_IMPLICIT_HEAD = struct.Struct("<HHI")
_EXPLICIT_HEAD = struct.Struct("<HH2sH")
_LONG_LENGTH = struct.Struct("<I")
# Printable ASCII only: no escape sequences (ISO 2022), control characters or NUL padding,
# which pydicom's decoding treats specially.
_PLAIN = re.compile(rb"[ -~]*")


def _text(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, MultiValue | list | tuple):
        return "\\".join(_text(v) for v in value)
    return str(value).strip()


@lru_cache(maxsize=1024)
def _dictionary(tag: int) -> tuple[str, str]:
    """Keyword and dictionary VR of a public tag (``("", "")`` if it has none)."""
    keyword = keyword_for_tag(tag)
    if not keyword:
        return "", ""
    try:
        return keyword, dictionary_VR(tag)
    except KeyError:
        return "", ""


def _plain_elements(data: bytes, implicit_vr: bool) -> list[tuple[int, str, bytes]] | None:
    """``(tag, VR, value)`` of every element of a plain identifier, in stream order, or
    ``None`` when something needs pydicom (a sequence, undefined length, a private or
    unknown element, a VR this reader does not take, a truncated element)."""
    out: list[tuple[int, str, bytes]] = []
    pos, end = 0, len(data)
    while pos < end:
        if pos + 8 > end:
            return None
        if implicit_vr:
            group, element, length = _IMPLICIT_HEAD.unpack_from(data, pos)
            pos += 8
            vr = ""
        else:
            group, element, raw_vr, length = _EXPLICIT_HEAD.unpack_from(data, pos)
            pos += 8
            try:
                vr = raw_vr.decode("ascii")
            except UnicodeDecodeError:
                return None
            if vr in LONG_LENGTH_VRS:
                if pos + 4 > end:
                    return None
                (length,) = _LONG_LENGTH.unpack_from(data, pos)
                pos += 4
        if group % 2 or length == 0xFFFFFFFF or pos + length > end:
            return None
        tag = group << 16 | element
        keyword, dictionary_vr = _dictionary(tag)
        if not keyword:
            return None
        if implicit_vr:
            vr = dictionary_vr
        elif vr != dictionary_vr:
            return None  # e.g. UN, or a VR the dictionary does not give this tag
        value = data[pos:pos + length]
        pos += length
        if vr not in _TEXT_VRS and not (vr in _EMPTY_ONLY_VRS and not value):
            return None
        out.append((tag, keyword, value))
    return out


def _plain_text(vr: str, value: bytes) -> str | None:
    """The value as :func:`to_query` reads it from pydicom (``_text(element.value)``):
    each value of a multi-valued VR stripped, backslashes kept; ``None`` if not plain."""
    if vr == "UI":
        value = value.rstrip(b"\0")  # a UID's padding (PS3.5 9.1)
    if not _PLAIN.fullmatch(value):
        return None
    text = value.decode("ascii")
    if vr == "PN" and "=" in text:
        return None  # component groups: pydicom's PersonName rewrites them
    if vr in SINGLE_VALUED_VRS or "\\" not in text:
        return text.strip()
    return "\\".join(v.strip() for v in text.split("\\"))


def query_from_bytes(data: bytes, implicit_vr: bool, little_endian: bool,
                     model: str) -> Query | None:
    """:func:`to_query` of an identifier read from its encoded bytes, or ``None`` when it
    is not plain (see :func:`_plain_elements`, non-ASCII text, Big Endian): the caller then
    decodes it with pydicom and calls :func:`to_query`.

    Raises
    ------
    InvalidQuery
        As :func:`to_query`.
    """
    if not little_endian:
        return None
    elements = _plain_elements(data, implicit_vr)
    if elements is None or any(a[0] >= b[0] for a, b in zip(elements, elements[1:],
                                                             strict=False)):
        return None  # pydicom sorts elements and keeps the last of a repeated tag
    level = ""
    filters: dict[str, str] = {}
    keys: list[str] = []
    for tag, keyword, value in elements:
        vr = _dictionary(tag)[1]
        text = _plain_text(vr, value)
        if text is None:
            return None
        if keyword == "QueryRetrieveLevel":
            level = text
        if keyword in _SKIP:
            continue
        keys.append(keyword)
        filters[keyword] = text
    return Query(level=_level(level, model), filters=filters, return_keys=keys)


def _level(level_text: str, model: str) -> Level:
    try:
        level = Level(level_text.strip().upper())
    except ValueError as exc:
        raise InvalidQuery("Query/Retrieve Level is missing or unknown") from exc
    if model in STUDY_ROOT and level == Level.PATIENT:
        raise InvalidQuery("the Study Root model has no PATIENT level")
    return level


def to_query(identifier: Dataset | None, model: str) -> Query:
    """Translate an identifier; the identifier itself is never modified.

    Raises
    ------
    InvalidQuery
        Missing or unknown Query/Retrieve Level, or a level the model does not have
        (Study Root has no PATIENT level, PS3.4 C.6.2); reported as 0xA900.
    """
    if identifier is None:
        raise InvalidQuery("identifier is missing or cannot be decoded")
    level = _level(str(identifier.get("QueryRetrieveLevel", "")), model)
    filters: dict[str, str] = {}
    keys: list[str] = []
    try:
        for element in identifier:
            keyword = element.keyword
            if not keyword or keyword in _SKIP:
                continue
            keys.append(keyword)
            if element.VR != "SQ":
                filters[keyword] = _text(element.value)
    except (ValueError, TypeError, KeyError) as exc:
        raise InvalidQuery("identifier cannot be decoded") from exc
    return Query(level=level, filters=filters, return_keys=keys)
