"""Dollars as people read them: "$0.0123", "$1,234.5000", "$10.00". One formatter for the admin's columns and
detail pages and the pages' `money` filter, so no cost is ever shown as a raw Decimal ("0.123400") or as a
SQLite sum with fifteen decimals."""

from decimal import ROUND_HALF_UP, Decimal

from chat.llm.pricing import COST_QUANTUM

CENTS = 2  # budgets and caps
COST_PLACES = 4  # what the chat page and the usage pages show of a cost


def money(amount, places: int = COST_PLACES) -> str:
    """`amount` (a Decimal, an int, a str; never a float) in dollars to `places` decimals. A cost too small to
    show at those places keeps the ledger's micro-dollars ("$0.000012"): a real charge never reads as none."""
    value = Decimal(amount)
    shown = value.quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_UP)
    if not shown and value:
        micro = value.quantize(COST_QUANTUM, rounding=ROUND_HALF_UP).normalize()
        return f"{'-' if value < 0 else ''}${abs(micro):f}"
    return f"{'-' if shown < 0 else ''}${abs(shown):,.{places}f}"
