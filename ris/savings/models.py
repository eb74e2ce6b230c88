"""Tables of the savings report: the exams still printed on film.

On the index's :class:`~storage.index.models.Base`, so the migration test compares them
with the migrated schema (revision ``0005_savings``).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import DateTime, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from storage.index.models import Base, Key


class PrintedExam(Base):
    """A study a technologist marked as printed on film (and how many sheets of which size).

    A study may be marked more than once (a reprint); each mark is one row. The study UID
    is not a foreign key: an exam may be printed before its images reach the archive.
    """

    __tablename__ = "printed_exams"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    study_uid: Mapped[str] = mapped_column(Key(64), index=True)
    sheets: Mapped[int] = mapped_column(Integer)
    sheet_size: Mapped[str] = mapped_column(String(16))
    username: Mapped[str] = mapped_column(String(64), default="")
    channel: Mapped[str] = mapped_column(String(16), default="")
    note: Mapped[str] = mapped_column(String(255), default="")
    at: Mapped[datetime] = mapped_column(DateTime, index=True)
