"""Which model answers: the user's pick, or for "Auto" a deterministic choice by the task; and where to fall back.

Auto reads only the new message (its text and how many attachments it carries), so the same message always
goes to the same tier, and the reason shown to the user is the rule that fired. The rules, first match wins:

1. Hard reasoning asked for in words ("prove", "step by step", "analyze", "derive", "trade-offs", ...): Opus.
2. A long message (LONG_MESSAGE_CHARS or more): Opus.
3. Several attachments to read together (MANY_ATTACHMENTS or more): Opus.
4. A short message (SHORT_MESSAGE_CHARS at most, no attachment) that asks to classify, extract, label, tag,
   translate or answer yes/no: Haiku.
5. Anything else: Sonnet.

Fallback, when a model stays overloaded after the SDK's retries, goes one family down: Opus, Sonnet, Haiku.
"""

import re
from dataclasses import dataclass

from django.conf import settings

from chat.llm import registry
from chat.llm.catalog import ModelSpec
from lifecycle import selectors as lifecycle_selectors

LONG_MESSAGE_CHARS = 4_000
SHORT_MESSAGE_CHARS = 400
MANY_ATTACHMENTS = 3
FALLBACK_CHAIN = ("opus", "sonnet", "haiku")

HARD_REASONING = re.compile(
    r"\b(prove|proof|step[- ]by[- ]step|analy[sz]e|analysis|derive|derivation|trade-?offs?|rigorous(?:ly)?"
    r"|in depth|think hard|root cause|architect(?:ure)?)\b",
    re.IGNORECASE,
)
QUICK_TASK = re.compile(
    r"\b(classify|categori[sz]e|extract|label|tag|sentiment|translate|yes or no|true or false|which category"
    r"|what language)\b",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class Route:
    model: str
    reason: str = ""  # why Auto chose the model; empty when the user chose it


def route(choice: str, *, text: str, attachment_count: int) -> Route:
    """The model for a reply: `choice` itself, or for AUTO the tier the rules above pick for this message."""
    if choice != registry.AUTO:
        return Route(choice)
    family, reason = _tier(text, attachment_count)
    spec = registry.family_model(family) or _default_model()
    return Route(spec.id, reason)


def _default_model() -> ModelSpec:
    """Where Auto goes when no model of the tier is offered: the site's default, unless it is retired; then the
    first model that is offered."""
    default = settings.CHAT_DEFAULT_MODEL
    if default in lifecycle_selectors.retired_model_ids():
        return registry.models_offered()[0]
    return registry.model_for(default)


def _tier(text: str, attachment_count: int) -> tuple[str, str]:
    if match := HARD_REASONING.search(text):
        return "opus", f"asks for careful reasoning (“{match.group()}”)"
    if len(text) >= LONG_MESSAGE_CHARS:
        return "opus", f"a long message ({len(text):,} characters)"
    if attachment_count >= MANY_ATTACHMENTS:
        return "opus", f"{attachment_count} attachments to read together"
    if len(text) <= SHORT_MESSAGE_CHARS and not attachment_count and (match := QUICK_TASK.search(text)):
        return "haiku", f"a short, well-defined task (“{match.group()}”)"
    return "sonnet", "an everyday request"


def fallback_model(model_id: str) -> ModelSpec | None:
    """The model to try when `model_id` stays overloaded: the next family down the chain, if any."""
    family = registry.model_for(model_id).family
    if family not in FALLBACK_CHAIN:
        return None
    for lower in FALLBACK_CHAIN[FALLBACK_CHAIN.index(family) + 1 :]:
        if spec := registry.family_model(lower):
            return spec
    return None
