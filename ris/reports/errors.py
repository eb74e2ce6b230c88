"""Report errors, mapped through their parents' rows of :data:`storage.errors.ERRORS`."""

from __future__ import annotations

from storage.errors import InvalidQuery


class InvalidReport(InvalidQuery):
    """The request cannot apply to a report (empty text, no signing user): HTTP 400."""

    code = "InvalidReport"
