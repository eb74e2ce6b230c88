"""RIS tables: patients (master patient index), orders, scheduled and performed steps.

They share the index's :class:`~storage.index.models.Base` so one Alembic history covers
both (revision ``0003_ris``). Matched columns use the index's byte-order ``Key`` type, so
the C-FIND matching code of :mod:`storage.index.query` works on them unchanged.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import DateTime, ForeignKey, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from storage.index.models import Base, Key


class RisPatient(Base):
    """A patient as the hospital (ADT) knows them; merged patients point at the survivor."""

    __tablename__ = "ris_patients"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    patient_id: Mapped[str] = mapped_column(Key(64), unique=True)
    issuer: Mapped[str] = mapped_column(String(64), default="")
    name: Mapped[str] = mapped_column(String(324), default="")
    name_norm: Mapped[str] = mapped_column(Key(324), default="", index=True)
    birth_date: Mapped[str] = mapped_column(String(8), default="")
    sex: Mapped[str] = mapped_column(String(16), default="")
    address: Mapped[str] = mapped_column(String(255), default="")
    phone: Mapped[str] = mapped_column(String(64), default="")
    merged_into: Mapped[str] = mapped_column(String(64), default="")
    created_at: Mapped[datetime] = mapped_column(DateTime)
    updated_at: Mapped[datetime] = mapped_column(DateTime)


class Order(Base):
    """An imaging order (requested procedure) and its workflow status with timestamps."""

    __tablename__ = "orders"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    accession_number: Mapped[str] = mapped_column(Key(16), unique=True)
    placer_order_number: Mapped[str] = mapped_column(String(64), default="")
    patient_fk: Mapped[int] = mapped_column(ForeignKey("ris_patients.id"), index=True)
    requested_procedure_id: Mapped[str] = mapped_column(String(16), default="")
    procedure_code: Mapped[str] = mapped_column(String(64), default="")
    procedure_description: Mapped[str] = mapped_column(String(64), default="")
    priority: Mapped[str] = mapped_column(String(16), default="ROUTINE")
    referring_physician_name: Mapped[str] = mapped_column(String(324), default="")
    department: Mapped[str] = mapped_column(String(64), default="")
    reason: Mapped[str] = mapped_column(String(255), default="")
    study_uid: Mapped[str] = mapped_column(Key(64), unique=True)
    linked_study_uid: Mapped[str] = mapped_column(Key(64), default="", index=True)
    status: Mapped[str] = mapped_column(String(16), index=True)
    ordered_at: Mapped[datetime] = mapped_column(DateTime)
    arrived_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    started_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    completed_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    preliminary_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    final_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    amended_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    cancelled_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    discontinued_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    updated_at: Mapped[datetime] = mapped_column(DateTime)


class ScheduledStep(Base):
    """A scheduled procedure step (PS3.3 C.4.10): what the modality's worklist shows."""

    __tablename__ = "scheduled_steps"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    order_fk: Mapped[int] = mapped_column(ForeignKey("orders.id"), index=True)
    sps_id: Mapped[str] = mapped_column(Key(16), index=True)
    modality: Mapped[str] = mapped_column(Key(16), default="", index=True)
    station_ae: Mapped[str] = mapped_column(Key(16), default="", index=True)
    station_name: Mapped[str] = mapped_column(Key(16), default="")
    start_date: Mapped[str] = mapped_column(Key(8), default="", index=True)
    start_time: Mapped[str] = mapped_column(Key(16), default="")
    performing_physician: Mapped[str] = mapped_column(String(324), default="")
    description: Mapped[str] = mapped_column(String(64), default="")


class PerformedStep(Base):
    """A modality performed procedure step (PS3.4 F.7), kept with its last attributes."""

    __tablename__ = "performed_steps"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    sop_instance_uid: Mapped[str] = mapped_column(Key(64), unique=True)
    order_fk: Mapped[int | None] = mapped_column(ForeignKey("orders.id"), nullable=True,
                                                 index=True)
    status: Mapped[str] = mapped_column(String(16))
    modality: Mapped[str] = mapped_column(String(16), default="")
    station_ae: Mapped[str] = mapped_column(String(16), default="")
    attributes_json: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(DateTime)
    updated_at: Mapped[datetime] = mapped_column(DateTime)
