"""The order status machine (IHE SWF order life cycle, as RIS products expose it).

scheduled → arrived → in progress → completed → preliminary → final → amended, with
cancelled (before the exam) and discontinued (the exam was stopped, PS3.3 C.4.14 MPPS
"DISCONTINUED") as ends. Any other move is refused by :func:`check_transition` before
anything changes.
"""

from __future__ import annotations

import enum

from ris.errors import InvalidTransition


class OrderStatus(enum.StrEnum):
    """Workflow status of an order (its requested procedure)."""

    SCHEDULED = "scheduled"
    ARRIVED = "arrived"
    IN_PROGRESS = "in_progress"
    COMPLETED = "completed"
    PRELIMINARY = "preliminary"
    FINAL = "final"
    AMENDED = "amended"
    CANCELLED = "cancelled"
    DISCONTINUED = "discontinued"


S = OrderStatus
TRANSITIONS: dict[OrderStatus, frozenset[OrderStatus]] = {
    # Images may arrive from a modality that sends no MPPS: scheduled/arrived → completed.
    S.SCHEDULED: frozenset({S.ARRIVED, S.IN_PROGRESS, S.COMPLETED, S.CANCELLED}),
    S.ARRIVED: frozenset({S.IN_PROGRESS, S.COMPLETED, S.CANCELLED}),
    S.IN_PROGRESS: frozenset({S.COMPLETED, S.DISCONTINUED}),
    S.COMPLETED: frozenset({S.PRELIMINARY, S.FINAL}),
    S.PRELIMINARY: frozenset({S.PRELIMINARY, S.FINAL}),
    S.FINAL: frozenset({S.AMENDED}),
    S.AMENDED: frozenset({S.AMENDED}),
    S.CANCELLED: frozenset(),
    S.DISCONTINUED: frozenset(),
}
"""Allowed moves; a preliminary report may be revised, a final one only amended."""

TIMESTAMP: dict[OrderStatus, str] = {
    S.ARRIVED: "arrived_at",
    S.IN_PROGRESS: "started_at",
    S.COMPLETED: "completed_at",
    S.PRELIMINARY: "preliminary_at",
    S.FINAL: "final_at",
    S.AMENDED: "amended_at",
    S.CANCELLED: "cancelled_at",
    S.DISCONTINUED: "discontinued_at",
}
"""The order column stamped when the status is reached (turnaround times read them)."""

PRIORITIES = ("STAT", "HIGH", "ROUTINE", "MEDIUM", "LOW")
"""Requested Procedure Priority (PS3.3 C.4.11, 0040,1003), most urgent first."""


def parse_status(value: str) -> OrderStatus:
    """``"in progress"``, ``"IN_PROGRESS"`` or ``"in-progress"`` → :class:`OrderStatus`."""
    key = value.strip().lower().replace(" ", "_").replace("-", "_")
    try:
        return OrderStatus(key)
    except ValueError as exc:
        raise InvalidTransition(f"unknown order status {value.strip()[:32]!r}") from exc


def check_transition(current: OrderStatus, target: OrderStatus) -> None:
    """Raise :class:`InvalidTransition` unless ``current → target`` is allowed."""
    if target not in TRANSITIONS[current]:
        raise InvalidTransition(f"order status cannot go from {current.value} to {target.value}")
