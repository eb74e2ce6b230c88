"""The savings report as JSON, CSV, HTML, PDF and PNG; the same figures in every format.

The HTML page is printable (A4 landscape print CSS) and serves as the dashboard at
``/reports/savings``; its charts are PNG images inlined as ``data:`` URIs, so the page is
one self-contained file that can be saved or mailed.
"""

from __future__ import annotations

import base64
import csv
import enum
import io
import json
from decimal import Decimal
from html import escape
from typing import Any

from ris.savings import charts
from ris.savings.operations import OperationsReport
from ris.savings.report import COLUMNS, SavingsReport, row_dict
from ris.savings.strings import STRINGS


class Format(enum.StrEnum):
    JSON = "json"
    CSV = "csv"
    HTML = "html"
    PDF = "pdf"
    PNG = "png"


MEDIA_TYPES = {
    Format.JSON: "application/json",
    Format.CSV: "text/csv; charset=utf-8",
    Format.HTML: "text/html; charset=utf-8",
    Format.PDF: "application/pdf",
    Format.PNG: "image/png",
}


def render(report: SavingsReport, fmt: Format, *, lang: str = "en",
           operations: OperationsReport | None = None) -> bytes:
    """``report`` in ``fmt``; ``operations`` adds the operations section to HTML/JSON."""
    words = STRINGS[lang]
    if fmt is Format.JSON:
        body = report.to_dict()
        if operations is not None:
            body["operations"] = operations.to_dict()
        return json.dumps(body, ensure_ascii=False, indent=1).encode()
    if fmt is Format.CSV:
        return to_csv(report).encode()
    if fmt is Format.HTML:
        return to_html(report, words, operations).encode()
    if fmt is Format.PNG:
        return charts.to_bytes(charts.chart_figure(report, words), "png")
    return to_pdf(report, words)


def to_csv(report: SavingsReport) -> str:
    """One header line (``group`` then :data:`COLUMNS`), one line per group, then totals.

    Money is written as plain numbers in the report's currency, without separators.
    """
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["group", *COLUMNS])
    for row in [*report.rows, report.totals]:
        values = row_dict(row)
        writer.writerow([report.group.value if row is not report.totals else "total",
                         *(values[c] for c in COLUMNS)])
    return out.getvalue()


def _fmt(value: Any) -> str:
    if isinstance(value, Decimal | int) and not isinstance(value, bool):
        return f"{value:,}"
    return str(value)


SUMMARY = ("studies", "films_avoided", "delivered_studies", "printed_studies",
           "costs_avoided", "storage_cost", "net_savings")
TABLE = ("studies", "images", "delivered_studies", "printed_studies", "printed_sheets",
         "films_avoided", "costs_avoided", "printed_cost", "storage_cost", "net_savings")


def _table(report: SavingsReport, words: dict[str, str]) -> list[list[str]]:
    head = [words[report.group.value], *(words[c] for c in TABLE)]
    body = [[r.key, *(_fmt(getattr(r, c)) for c in TABLE)] for r in report.rows]
    foot = [words["total"], *(_fmt(getattr(report.totals, c)) for c in TABLE)]
    return [head, *body, foot]


def _img(png: bytes, alt: str) -> str:
    return (f'<img alt="{escape(alt)}" src="data:image/png;base64,'
            f'{base64.b64encode(png).decode()}">')


STYLE = """
body{font-family:system-ui,sans-serif;margin:1.5em;color:#222}
h1{margin-bottom:.2em} .meta{color:#555}
.cards{display:flex;flex-wrap:wrap;gap:.8em;margin:1em 0}
.card{border:1px solid #ccc;border-radius:6px;padding:.5em .9em;min-width:9em}
.card b{display:block;font-size:1.3em}
table{border-collapse:collapse;margin:1em 0;font-size:.9em}
th,td{border:1px solid #bbb;padding:.25em .5em;text-align:right}
th:first-child,td:first-child{text-align:left} tfoot td{font-weight:bold}
.charts img{max-width:32%;margin-right:1%}
@media print{@page{size:A4 landscape;margin:12mm} .noprint{display:none}
 .charts img{max-width:32%}}
"""


def to_html(report: SavingsReport, words: dict[str, str],
            operations: OperationsReport | None = None) -> str:
    lang = next(k for k, v in STRINGS.items() if v is words)
    t = report.totals
    cards = "".join(
        f'<div class="card">{escape(words[c])}<b>{_fmt(getattr(t, c))}'
        f'{" " + escape(report.currency) if isinstance(getattr(t, c), Decimal) else ""}'
        f"</b></div>" for c in SUMMARY)
    rows = _table(report, words)
    thead = "".join(f"<th>{escape(h)}</th>" for h in rows[0])
    tbody = "".join("<tr>" + "".join(f"<td>{escape(v)}</td>" for v in r) + "</tr>"
                    for r in rows[1:-1])
    tfoot = "".join(f"<td>{escape(v)}</td>" for v in rows[-1])
    imgs = "".join(_img(charts.single_chart_png(report, words, i), words[k])
                   for i, k in enumerate(("chart_savings", "chart_films", "chart_storage")))
    parts = [
        f'<!DOCTYPE html><html lang="{lang}"><head><meta charset="utf-8">',
        f"<title>{escape(words['title'])}</title><style>{STYLE}</style></head><body>",
        f"<h1>{escape(words['title'])}</h1>",
        f'<p class="meta">{escape(words["period"])}: {report.start} – {report.end} · '
        f'{escape(words["generated"])}: {report.generated_at.isoformat(sep=" ")} · '
        f"{escape(report.currency)}</p>",
        f'<p class="noprint"><button onclick="window.print()">{escape(words["print"])}'
        "</button></p>",
        f'<div class="cards">{cards}</div>',
        f'<div class="charts">{imgs}</div>',
        f"<table><thead><tr>{thead}</tr></thead><tbody>{tbody}</tbody>"
        f"<tfoot><tr>{tfoot}</tr></tfoot></table>",
    ]
    if operations is not None:
        parts.append(_operations_html(operations, words))
    parts.append(f'<p class="meta">{escape(words["cost_model_note"])}</p></body></html>')
    return "".join(parts)


def _operations_html(ops: OperationsReport, words: dict[str, str]) -> str:
    modalities = sorted({m for day in ops.studies_per_day.values() for m in day})
    head = "".join(f"<th>{escape(m)}</th>" for m in modalities)
    days = "".join(
        f"<tr><td>{escape(d)}</td>"
        + "".join(f"<td>{counts.get(m, 0)}</td>" for m in modalities) + "</tr>"
        for d, counts in ops.studies_per_day.items())
    turn = "".join(
        f"<tr><td>{escape(words[name])}</td><td>{escape(m)}</td><td>{t.count}</td>"
        f"<td>{t.median_minutes if t.median_minutes is not None else '–'}</td>"
        f"<td>{t.p90_minutes if t.p90_minutes is not None else '–'}</td></tr>"
        for name, by in ops.turnaround.items() for m, t in by.items())
    full = ("–" if ops.days_until_full is None else f"{ops.days_until_full:,.0f}")
    errors = sum(sum(c.values()) for c in ops.ingest_errors.values())
    return (
        f"<h2>{escape(words['operations'])}</h2>"
        f'<div class="cards"><div class="card">{escape(words["storage_used"])}'
        f"<b>{ops.storage_used_bytes / 1e9:,.2f} GB</b></div>"
        f'<div class="card">{escape(words["growth"])}'
        f"<b>{ops.storage_growth_bytes_per_day / 1e9:,.3f} GB</b></div>"
        f'<div class="card">{escape(words["days_until_full"])}<b>{full}</b></div>'
        f'<div class="card">{escape(words["ingest_errors"])}<b>{errors}</b></div></div>'
        f"<h3>{escape(words['studies_per_day'])}</h3>"
        f"<table><thead><tr><th></th>{head}</tr></thead><tbody>{days}</tbody></table>"
        f"<h3>{escape(words['turnaround'])}</h3><table><tbody>{turn}</tbody></table>")


def to_pdf(report: SavingsReport, words: dict[str, str]) -> bytes:
    """Two A4 landscape pages: the figures table, then the charts."""
    from matplotlib.backends.backend_pdf import PdfPages

    buf = io.BytesIO()
    with PdfPages(buf, metadata={"Title": words["title"], "Creator": "Filmless PACS"}) as pdf:
        page = charts._figure(11.69, 8.27)
        page.suptitle(f"{words['title']}  {report.start} – {report.end}  ({report.currency})")
        ax = page.add_subplot()
        ax.axis("off")
        rows = _table(report, words)
        table = ax.table(cellText=rows[1:], colLabels=rows[0], loc="upper center")
        table.auto_set_font_size(False)
        table.set_fontsize(7)
        table.scale(1, 1.3)
        pdf.savefig(page)
        pdf.savefig(charts.chart_figure(report, words))
    return buf.getvalue()

