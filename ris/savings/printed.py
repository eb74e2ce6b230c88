"""Marking an exam as printed on film: the only evidence of film still used.

A technologist marks a study with the number of sheets and their size; the savings report
then counts that study as printed (no film avoided) and prices the film it used. The mark
is a change tied to patient data, so it is audited in the transaction that writes it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select

from ris.savings.costmodel import CostModel
from ris.savings.models import PrintedExam
from storage.audit import append_events, event_values, utcnow
from storage.errors import InvalidQuery, NotFound
from storage.index.database import Database
from storage.index.models import Patient, Study
from storage.origin import Origin

MAX_SHEETS = 200
"""More sheets than any one exam prints: a typing error, refused."""


class InvalidMark(InvalidQuery):
    """A printed mark with an impossible sheet count or an unknown sheet size (HTTP 400)."""

    code = "InvalidMark"


@dataclass(frozen=True)
class PrintedMark:
    study_uid: str
    sheets: int
    sheet_size: str
    username: str
    at: datetime
    note: str = ""


def _mark(row: PrintedExam) -> PrintedMark:
    return PrintedMark(row.study_uid, row.sheets, row.sheet_size, row.username, row.at,
                       row.note)


class PrintedRegister:
    """Records and lists the printed marks of studies."""

    def __init__(self, db: Database, model: CostModel) -> None:
        self._db = db
        self._model = model

    def mark(self, study_uid: str, sheets: int, origin: Origin, *, sheet_size: str = "",
             note: str = "") -> PrintedMark:
        """Record that ``study_uid`` was printed on ``sheets`` sheets of ``sheet_size``.

        Raises
        ------
        InvalidMark
            ``sheets`` outside 1..200 or a size the cost model has no price for.
        NotFound
            No such study in the archive.
        """
        size = sheet_size or self._model.default_sheet_size
        if not 1 <= sheets <= MAX_SHEETS:
            raise InvalidMark(f"sheets must be between 1 and {MAX_SHEETS}")
        if size not in self._model.sheet_prices:
            raise InvalidMark(f"unknown sheet size {size!r}; known: "
                              + ", ".join(sorted(self._model.sheet_prices)))
        with self._db.write() as s:
            found = s.execute(select(Study.study_uid, Patient.patient_id)
                              .join(Patient, Study.patient_fk == Patient.id)
                              .where(Study.study_uid == study_uid)).first()
            if found is None:
                raise NotFound("no study with this Study Instance UID")
            row = PrintedExam(study_uid=study_uid, sheets=sheets, sheet_size=size,
                              username=origin.username[:64], channel=origin.channel[:16],
                              note=note[:255], at=utcnow())
            s.add(row)
            s.flush()
            append_events(s.connection(), [event_values(
                origin, "printed", "ok", patient_id=found.patient_id, study_uid=study_uid,
                detail={"sheets": sheets, "sheet_size": size})])
            return _mark(row)

    def marks(self, study_uid: str) -> list[PrintedMark]:
        with self._db.read() as s:
            rows = s.scalars(select(PrintedExam).where(PrintedExam.study_uid == study_uid)
                             .order_by(PrintedExam.id))
            return [_mark(r) for r in rows]
