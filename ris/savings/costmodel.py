"""The cost model of the filmless savings report: what film, paper, discs and storage cost.

Every default is documented, with its source, in ``docs/savings.md``; hospitals replace them
with their own supplier prices in the ``[savings]`` table of the TOML settings file or with
``PACS_SAVINGS__<FIELD>`` variables. Money is in :attr:`CostModel.currency` (VND by default,
which has no minor unit, so amounts are whole numbers unless ``currency_decimals`` says
otherwise).
"""

from __future__ import annotations

import math
from decimal import Decimal

from pydantic import BaseModel, ConfigDict, Field, field_validator

# Film sheet sizes in centimetres (the sizes laser imagers take), with a price per sheet.
# 35x43 cm (14x17 in) is the film part of one X-ray exam, about 40,000 VND (issue 6); the
# smaller sizes are that price scaled by area and rounded to 1,000 VND (an estimate).
DEFAULT_SHEET_PRICES: dict[str, Decimal] = {
    "20x25": Decimal(13_000),
    "24x30": Decimal(19_000),
    "26x36": Decimal(25_000),
    "35x35": Decimal(33_000),
    "35x43": Decimal(40_000),
}

# How many images a printed sheet holds, by modality (PS3.3 C.7.3.1.1.1 defined terms).
# Cross-sectional images are printed as a 4x5 grid on a 35x43 sheet; projection
# radiographs one per sheet. Modalities not listed (SR, KO, PR, RT objects...) are never
# printed on film.
DEFAULT_IMAGES_PER_SHEET: dict[str, int] = {
    "CT": 20, "MR": 20, "PT": 20, "NM": 12,
    "CR": 1, "DX": 1, "MG": 1, "IO": 1, "PX": 1,
    "RF": 4, "XA": 12, "US": 6, "ES": 6, "OT": 1,
}

DEFAULT_SHEET_SIZE: dict[str, str] = {
    "MG": "24x30", "IO": "20x25", "US": "20x25", "ES": "20x25",
}
"""Sheet size by modality; the others print on 35x43 cm."""

# At most this many sheets are printed for one study of the modality: a CT is about
# 500,000 VND of film (issue 6), i.e. 12 sheets of 35x43 at 40,000 VND.
DEFAULT_MAX_SHEETS: dict[str, int] = {"CT": 12, "MR": 12, "PT": 12, "NM": 6, "XA": 6, "US": 3}


class CostModel(BaseModel):
    """Prices and print habits that turn archived images into film avoided and money saved.

    Attributes
    ----------
    currency : ISO 4217 code of every amount.
    currency_decimals : digits after the decimal point of reported amounts.
    sheet_prices : price of one film sheet by size (``"35x43"`` in cm).
    default_sheet_size : size used for modalities missing from ``sheet_size_by_modality``.
    sheet_size_by_modality : sheet size a modality prints on.
    images_per_sheet : images printed on one sheet, by modality; 0 or absent = not printed.
    max_sheets_per_study : the most sheets one study of a modality would have used.
    envelope_cost : the film envelope handed out with each printed study.
    paper_report_cost : the printed report (paper and toner) of each study.
    cd_cost : one CD/DVD with its case.
    cd_share : share (0-1) of studies that would have been burned to a disc.
    storage_price_per_gb_month : object storage price, per GB (10^9 bytes) and month.
    storage_retention_months : months each study is charged for storage.
    only_delivered : count film avoided only for studies delivered digitally.
    storage_quota_gb : capacity bought (bucket quota or disk) for the days-until-full
        forecast; 0 = the free space of the object filesystem.
    """

    model_config = ConfigDict(frozen=True)

    currency: str = Field("VND", min_length=3, max_length=3)
    currency_decimals: int = Field(0, ge=0, le=4)
    sheet_prices: dict[str, Decimal] = Field(default_factory=lambda: dict(DEFAULT_SHEET_PRICES))
    default_sheet_size: str = "35x43"
    sheet_size_by_modality: dict[str, str] = Field(
        default_factory=lambda: dict(DEFAULT_SHEET_SIZE))
    images_per_sheet: dict[str, int] = Field(
        default_factory=lambda: dict(DEFAULT_IMAGES_PER_SHEET))
    max_sheets_per_study: dict[str, int] = Field(
        default_factory=lambda: dict(DEFAULT_MAX_SHEETS))
    envelope_cost: Decimal = Field(Decimal(3_000), ge=0)
    paper_report_cost: Decimal = Field(Decimal(1_000), ge=0)
    cd_cost: Decimal = Field(Decimal(15_000), ge=0)
    cd_share: Decimal = Field(Decimal(0), ge=0, le=1)
    storage_price_per_gb_month: Decimal = Field(Decimal(600), ge=0)
    storage_retention_months: int = Field(120, ge=0)
    only_delivered: bool = False
    storage_quota_gb: float = Field(0, ge=0)

    @field_validator("sheet_prices")
    @classmethod
    def _prices_positive(cls, value: dict[str, Decimal]) -> dict[str, Decimal]:
        bad = [size for size, price in value.items() if price < 0]
        if bad:
            raise ValueError(f"negative sheet price for {', '.join(bad)}")
        return value

    def sheet_size(self, modality: str) -> str:
        return self.sheet_size_by_modality.get(modality, self.default_sheet_size)

    def sheet_price(self, size: str) -> Decimal:
        """Price of one sheet of ``size``; unknown sizes cost as the default size."""
        price = self.sheet_prices.get(size)
        if price is None:
            price = self.sheet_prices.get(self.default_sheet_size, Decimal(0))
        return price

    def sheets_for_series(self, modality: str, images: int) -> int:
        """Sheets one series of ``images`` images would have been printed on."""
        per_sheet = self.images_per_sheet.get(modality, 0)
        if per_sheet <= 0 or images <= 0:
            return 0
        return math.ceil(images / per_sheet)

    def cap_sheets(self, modality: str, sheets: int) -> int:
        """A study's sheets of one modality, limited to what one study would print."""
        limit = self.max_sheets_per_study.get(modality)
        return min(sheets, limit) if limit else sheets

    def printed_cost(self, sheets: list[tuple[int, str]]) -> Decimal:
        """What ``(count, size)`` sheets actually printed cost, with one envelope."""
        if not sheets:
            return Decimal(0)
        film = sum((Decimal(n) * self.sheet_price(size) for n, size in sheets), Decimal(0))
        return film + self.envelope_cost

    def money(self, value: Decimal) -> Decimal:
        """``value`` rounded to the currency's reported precision."""
        return value.quantize(Decimal(1).scaleb(-self.currency_decimals))
