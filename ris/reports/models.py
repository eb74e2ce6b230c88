"""Report tables: one row per report, one per signed addendum (same ``Base`` as the index).

The signed columns (``text``, ``signer``, ``signed_at``, identity of the study) are the
content whose SHA-256 ``digest`` and Ed25519 ``signature`` are stored with it; the
delivery columns (``oru_*``, ``sr_*``) are bookkeeping outside the signature.
"""

from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import DateTime, ForeignKey, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from storage.index.models import Base, Key


class ReportStatus(enum.StrEnum):
    """The report life cycle (SPEC.md "RIS workflow"); HL7 v2 OBR-25 Result Status codes
    are P (preliminary), F (final) and C (corrected, for amended)."""

    DRAFT = "draft"
    PRELIMINARY = "preliminary"
    FINAL = "final"
    AMENDED = "amended"


class Report(Base):
    __tablename__ = "reports"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    study_uid: Mapped[str] = mapped_column(Key(64), index=True)
    accession_number: Mapped[str] = mapped_column(Key(64), default="", index=True)
    status: Mapped[str] = mapped_column(String(16), index=True)
    text: Mapped[str] = mapped_column(Text, default="")
    author: Mapped[str] = mapped_column(String(64), default="")
    created_at: Mapped[datetime] = mapped_column(DateTime)
    updated_at: Mapped[datetime] = mapped_column(DateTime)
    signer: Mapped[str] = mapped_column(String(64), default="")
    signed_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    digest: Mapped[str] = mapped_column(String(64), default="")
    signature: Mapped[str] = mapped_column(String(128), default="")
    key_id: Mapped[str] = mapped_column(String(64), default="")
    sr_series_uid: Mapped[str] = mapped_column(String(64), default="")
    sr_instance_uid: Mapped[str] = mapped_column(String(64), default="")
    oru_status: Mapped[str] = mapped_column(String(16), default="")
    oru_attempts: Mapped[int] = mapped_column(Integer, default=0)
    oru_error: Mapped[str] = mapped_column(String(255), default="")


class ReportAddendum(Base):
    """A signed amendment of a final report: the final text is never edited."""

    __tablename__ = "report_addenda"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    report_fk: Mapped[int] = mapped_column(ForeignKey("reports.id"), index=True)
    text: Mapped[str] = mapped_column(Text)
    signer: Mapped[str] = mapped_column(String(64))
    signed_at: Mapped[datetime] = mapped_column(DateTime)
    digest: Mapped[str] = mapped_column(String(64))
    signature: Mapped[str] = mapped_column(String(128))
    key_id: Mapped[str] = mapped_column(String(64))
    sr_instance_uid: Mapped[str] = mapped_column(String(64), default="")
