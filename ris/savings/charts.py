"""Charts of the savings report with matplotlib (Agg backend: no display needed).

Figures are built with the object API (``Figure`` + canvas), never ``pyplot``, so
concurrent requests in the HTTP threadpool do not share pyplot's global state.
"""

from __future__ import annotations

import io
from typing import Any

from ris.savings.report import SavingsReport


def _figure(width: float, height: float) -> Any:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _empty(ax: Any, text: str) -> None:
    ax.text(0.5, 0.5, text, ha="center", va="center", transform=ax.transAxes, color="grey")
    ax.set_xticks([])
    ax.set_yticks([])


def draw_savings(ax: Any, report: SavingsReport, words: dict[str, str]) -> None:
    months = [r.key for r in report.by_month]
    values = [float(r.net_savings) for r in report.by_month]
    ax.set_title(f"{words['chart_savings']} ({report.currency})")
    if not months:
        _empty(ax, words["none"])
        return
    ax.bar(months, values, color=["#2e7d32" if v >= 0 else "#c62828" for v in values])
    ax.tick_params(axis="x", labelrotation=45)
    ax.ticklabel_format(axis="y", style="plain", useOffset=False)


def draw_films(ax: Any, report: SavingsReport, words: dict[str, str]) -> None:
    rows = [r for r in report.by_modality if r.films_avoided]
    ax.set_title(words["chart_films"])
    if not rows:
        _empty(ax, words["none"])
        return
    ax.bar([r.key for r in rows], [r.films_avoided for r in rows], color="#1565c0")


def draw_storage(ax: Any, report: SavingsReport, words: dict[str, str]) -> None:
    ax.set_title(words["chart_storage"])
    if not report.storage_growth:
        _empty(ax, words["none"])
        return
    months = [m for m, _ in report.storage_growth]
    ax.plot(months, [b / 1e9 for _, b in report.storage_growth], marker="o", color="#6a1b9a")
    ax.set_ylim(bottom=0)
    ax.tick_params(axis="x", labelrotation=45)


CHARTS = (draw_savings, draw_films, draw_storage)


def chart_figure(report: SavingsReport, words: dict[str, str]) -> Any:
    """The three charts side by side in one figure."""
    fig = _figure(15, 4.5)
    for ax, draw in zip(fig.subplots(1, 3), CHARTS, strict=True):
        draw(ax, report, words)
    return fig


def single_chart_png(report: SavingsReport, words: dict[str, str], index: int) -> bytes:
    fig = _figure(6, 4)
    CHARTS[index](fig.add_subplot(), report, words)
    return to_bytes(fig, "png")


def to_bytes(fig: Any, fmt: str, dpi: int = 100) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format=fmt, dpi=dpi)
    return buf.getvalue()
