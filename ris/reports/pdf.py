"""A one-page printable report (PDF, with fpdf2) in a Unicode font with Vietnamese glyphs.

The font is DejaVu Sans: the file named in the settings if any, else the copy bundled with
matplotlib (always installed with the project), else Debian's ``fonts-dejavu``.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path

_DEBIAN = Path("/usr/share/fonts/truetype/dejavu")


def _matplotlib_fonts() -> Path | None:
    spec = importlib.util.find_spec("matplotlib")  # found, not imported: no start-up cost
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations))) / "mpl-data" / "fonts" / "ttf"


def font_files(configured: Path | None = None) -> tuple[Path, Path]:
    """(regular, bold) DejaVu Sans files.

    Raises
    ------
    FileNotFoundError
        No usable font is installed (install matplotlib or fonts-dejavu).
    """
    if configured is not None:
        bold = configured.with_name(configured.stem + "-Bold" + configured.suffix)
        return configured, bold if bold.is_file() else configured
    for folder in (_matplotlib_fonts(), _DEBIAN):
        if folder is not None and (folder / "DejaVuSans.ttf").is_file():
            bold = folder / "DejaVuSans-Bold.ttf"
            return folder / "DejaVuSans.ttf", bold if bold.is_file() else folder / "DejaVuSans.ttf"
    raise FileNotFoundError("DejaVuSans.ttf not found: install matplotlib or fonts-dejavu")


def render_pdf(*, title: str, institution: str, details: Sequence[tuple[str, str]],
               text: str, status: str, signature: Sequence[tuple[str, str]],
               addenda: Sequence[tuple[str, datetime, str]],
               font: Path | None = None) -> bytes:
    """The PDF bytes of one report: header, exam details, text, addenda, signature block.

    ``details`` and ``signature`` are (label, value) rows; ``addenda`` (signer, signed_at,
    text). Long text wraps; the page is A4 with automatic breaks as a last resort.
    """
    # Imported here: fpdf2 and its font tools take a quarter of a second to import, which
    # every `pacs` command and every DICOM worker would otherwise pay at start.
    from fpdf import FPDF

    regular, bold = font_files(font)
    pdf = FPDF(format="A4")
    pdf.set_auto_page_break(auto=True, margin=15)
    pdf.add_font("DejaVu", "", str(regular))
    pdf.add_font("DejaVu", "B", str(bold))
    pdf.set_title(title)
    pdf.set_creator("Filmless PACS")
    pdf.add_page()
    pdf.set_font("DejaVu", "B", 16)
    pdf.cell(0, 9, title, new_x="LMARGIN", new_y="NEXT")
    if institution:
        pdf.set_font("DejaVu", "", 10)
        pdf.cell(0, 6, institution, new_x="LMARGIN", new_y="NEXT")
    pdf.ln(2)
    pdf.set_font("DejaVu", "", 10)
    for label, value in details:
        pdf.set_font("DejaVu", "B", 10)
        pdf.cell(45, 6, label)
        pdf.set_font("DejaVu", "", 10)
        pdf.multi_cell(0, 6, value or "-", new_x="LMARGIN", new_y="NEXT")
    pdf.ln(3)
    pdf.set_font("DejaVu", "B", 12)
    pdf.cell(0, 7, f"Report ({status})", new_x="LMARGIN", new_y="NEXT")
    pdf.set_font("DejaVu", "", 11)
    pdf.multi_cell(0, 6, text or "-", new_x="LMARGIN", new_y="NEXT")
    for signer, signed_at, addendum in addenda:
        pdf.ln(2)
        pdf.set_font("DejaVu", "B", 11)
        pdf.cell(0, 6, f"Addendum {signed_at:%Y-%m-%d %H:%M} UTC - {signer}",
                 new_x="LMARGIN", new_y="NEXT")
        pdf.set_font("DejaVu", "", 11)
        pdf.multi_cell(0, 6, addendum, new_x="LMARGIN", new_y="NEXT")
    pdf.ln(4)
    pdf.set_font("DejaVu", "", 8)
    for label, value in signature:
        pdf.multi_cell(0, 4, f"{label}: {value}", new_x="LMARGIN", new_y="NEXT")
    return bytes(pdf.output())
