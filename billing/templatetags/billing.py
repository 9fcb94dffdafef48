from django import template

from billing import selectors

register = template.Library()


@register.filter
def conversation_cost(conversation):
    """Dollars the ledger holds for `conversation`; the caller has already checked who may see it."""
    return selectors.conversation_cost(conversation)
