from django import template

from billing import money as money_format
from billing import selectors

register = template.Library()


@register.filter
def conversation_cost(conversation):
    """Dollars the ledger holds for `conversation`; the caller has already checked who may see it."""
    return selectors.conversation_cost(conversation)


@register.filter
def money(amount, places=money_format.COST_PLACES):
    """`{{ cost|money }}` "$0.0123", `{{ budget|money:2 }}` "$10.00" (billing/money.py); empty stays empty."""
    return "" if amount is None or amount == "" else money_format.money(amount, int(places))
