"""Filmless savings: the cost model, the report, printed marks and operations figures."""

from ris.savings.costmodel import CostModel
from ris.savings.operations import OperationsReport
from ris.savings.printed import InvalidMark, PrintedMark
from ris.savings.render import Format, render
from ris.savings.report import Group, SavingsReport, SavingsRow
from ris.savings.service import SavingsService

__all__ = ["CostModel", "Format", "Group", "InvalidMark", "OperationsReport", "PrintedMark",
           "SavingsReport", "SavingsRow", "SavingsService", "render"]
