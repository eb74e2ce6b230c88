"""C-FIND / C-MOVE / C-GET identifiers → :class:`storage.index.query.Query` (PS3.4 C.4)."""

from __future__ import annotations

from pydicom.dataset import Dataset
from pydicom.multival import MultiValue
from pynetdicom import sop_class

from storage.errors import InvalidQuery
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


def _text(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, MultiValue | list | tuple):
        return "\\".join(_text(v) for v in value)
    return str(value).strip()


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
    try:
        level = Level(str(identifier.get("QueryRetrieveLevel", "")).strip().upper())
    except ValueError as exc:
        raise InvalidQuery("Query/Retrieve Level is missing or unknown") from exc
    if model in STUDY_ROOT and level == Level.PATIENT:
        raise InvalidQuery("the Study Root model has no PATIENT level")
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
