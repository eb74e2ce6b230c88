"""Find statements built once per query shape and reused with new bound values.

A C-FIND or QIDO-RS query used to build its ``select`` from scratch: SQLAlchemy
construction, a cache-key walk to find the compiled SQL, and, because the statement object
was new, a re-mapping of the cached result columns onto it. That was about 1 ms of CPU per
query, most of the fixed cost of a two-match C-FIND. Queries of one shape (same level,
same matching keys with the same kind of matching, same return keys) differ only in bound
values (:func:`storage.index.query.shape`), so the statement is built for the first of
them and executed with the values of each.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Sequence
from datetime import date, timedelta
from typing import Any

from pydicom.datadict import tag_for_keyword
from sqlalchemy import Select

from storage.index import results
from storage.index.database import Database
from storage.index.query import Level, Query, build_select, shape

_MAX = 256
"""Shapes kept per process: a client's few query forms, plus QIDO paging offsets."""

_cache: OrderedDict[tuple[Any, ...], Select[Any]] = OrderedDict()
_lock = threading.Lock()


def find_statement(query: Query, keys: Sequence[str], *, cap: int,
                   columns_only: bool) -> tuple[Select[Any], dict[str, Any]]:
    """The statement answering ``query`` and the bound values to execute it with.

    ``columns_only``: select just the index columns of ``keys``
    (:func:`storage.index.results.columns`), not whole entities.

    Raises
    ------
    InvalidQuery
        A malformed matching value (from :func:`storage.index.query.terms`).
    """
    key, values = shape(query, cap=cap)
    cache_key = (key, tuple(keys), columns_only)
    with _lock:
        stmt = _cache.get(cache_key)
        if stmt is not None:
            _cache.move_to_end(cache_key)
            return stmt, values
    stmt = build_select(query, cap=cap)
    if columns_only:
        stmt = stmt.with_only_columns(*results.columns(query.level, keys),
                                      maintain_column_froms=True)
    with _lock:
        _cache[cache_key] = stmt
        if len(_cache) > _MAX:
            _cache.popitem(last=False)
    return stmt, values


STUDY_RETURN_KEYS = ("PatientName", "PatientID", "PatientBirthDate", "PatientSex",
                     "StudyInstanceUID", "StudyDate", "StudyTime", "AccessionNumber", "StudyID",
                     "StudyDescription", "ReferringPhysicianName", "ModalitiesInStudy",
                     "NumberOfStudyRelatedSeries", "NumberOfStudyRelatedInstances")
"""The study-level keys a viewer typically asks for (PS3.4 C.6.2.1.2 required and unique
keys plus the usual optional ones)."""


def warm(db: Database, *, cap: int, today: date | None = None) -> int:
    """Run the common study-level query shapes once, without answering anyone.

    The first query of a new process paid for everything done once: SQLAlchemy's mapper
    configuration, the pooled connection and its pragmas, compiling the statement, index
    pages read from disk: 130 ms for a PatientID query at 5,000 studies, then 10 ms for each
    further shape, against 1-4 ms warm. A DICOM worker does this before it accepts
    associations. Nothing is audited: no patient data leaves the process. Returns the
    number of shapes run.
    """
    day = today or date.today()
    return_keys = sorted(STUDY_RETURN_KEYS, key=tag_for_keyword)  # an identifier's order
    month_ago = (day - timedelta(days=30)).strftime("%Y%m%d")
    blank = dict.fromkeys(return_keys, "")
    shapes = [{"PatientID": "-"}, {"PatientName": "-*"},
              {"StudyDate": f"{month_ago}-{day:%Y%m%d}"}, {"StudyDate": f"{day:%Y%m%d}"}]
    for matching in shapes:
        query = Query(Level.STUDY, {**blank, **matching}, return_keys)
        keys = results.response_keys(query.level, query.return_keys)
        stmt, values = find_statement(query, keys, cap=cap,
                                      columns_only=not results.needs_header(query.level,
                                                                            keys))
        with db.select(stmt, values) as result:
            for _row in result:
                pass
    return len(shapes)
