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
from typing import Any

from sqlalchemy import Select

from storage.index import results
from storage.index.query import Query, build_select, shape

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
