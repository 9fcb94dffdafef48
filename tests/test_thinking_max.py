"""Effort "max": offered and sent only for the models that take it (chat/llm/request.py, ModelSpec.max_effort)."""

import json

import pytest
from anthropic.types import ModelInfo
from channels.db import database_sync_to_async
from test_consumer import connected, frames_until_final

from chat.llm.catalog import MODELS_BY_ID
from chat.llm.registry import spec_from_api
from chat.llm.request import output_options, thinking_choices
from chat.models import ThinkingLevel
from chat.views import model_choices

TAKES_MAX = "claude-opus-4-6"
ADAPTIVE_WITHOUT_MAX = "claude-sonnet-5-5"
BUDGET = "claude-haiku-4-5"


def levels(model_id: str | None) -> list[str]:
    return [level for level, _ in thinking_choices(MODELS_BY_ID[model_id] if model_id else None)]


def test_max_is_offered_only_for_a_model_that_takes_it():
    assert levels(TAKES_MAX) == ["off", "low", "medium", "high", "max"]
    assert "max" not in levels(ADAPTIVE_WITHOUT_MAX)
    assert "max" not in levels(BUDGET)
    assert "max" not in levels(None)  # Auto may pick a model without it


@pytest.mark.django_db
def test_the_picker_offers_max_with_the_models_that_take_it():
    offered = {choice["id"]: [level for level, _ in json.loads(choice["thinking"])] for choice in model_choices()}

    assert [model for model, shown in offered.items() if "max" in shown] == [
        spec.id for spec in MODELS_BY_ID.values() if spec.max_effort and spec.id in offered
    ]
    assert "max" in offered[TAKES_MAX] and "max" not in offered[ADAPTIVE_WITHOUT_MAX]


def test_max_is_sent_as_effort_max_and_a_model_without_it_thinks_at_high():
    assert output_options(MODELS_BY_ID[TAKES_MAX], ThinkingLevel.MAX, False)["output_config"] == {"effort": "max"}
    assert output_options(MODELS_BY_ID[ADAPTIVE_WITHOUT_MAX], ThinkingLevel.MAX, False)["output_config"] == {
        "effort": "high"
    }
    budget = output_options(MODELS_BY_ID[BUDGET], ThinkingLevel.MAX, False)
    assert budget["thinking"] == output_options(MODELS_BY_ID[BUDGET], ThinkingLevel.HIGH, False)["thinking"]
    assert budget["thinking"]["type"] == "enabled" and "output_config" not in budget


def test_the_models_api_says_whether_a_model_takes_max():
    support = {"supported": True}

    def listed(max_supported: bool) -> ModelInfo:
        listing = {
            "type": "model", "id": TAKES_MAX, "display_name": "Claude Opus 4.6", "created_at": "2026-02-01T00:00:00Z",
            "lifecycle": "active", "line": "opus",
            "capabilities": {
                "image_input": support, "pdf_input": support,
                "thinking": {"supported": True, "types": {
                    "adaptive": support, "enabled": {"supported": False}, "disabled": support,
                    "between_tools": {"supported": False},
                }},
                "effort": {"supported": True, "low": support, "medium": support, "high": support,
                           "max": {"supported": max_supported}},
            },
        }
        return ModelInfo.construct(**listing)

    assert spec_from_api(listed(True)).max_effort is True
    assert spec_from_api(listed(False)).max_effort is False


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("generations_drained")
async def test_a_conversation_at_max_on_a_model_that_takes_it_sends_effort_max(
    socket_for, owner, conversation, offline_model_reset
):
    conversation.model, conversation.thinking = TAKES_MAX, ThinkingLevel.MAX
    await database_sync_to_async(conversation.save)(update_fields=["model", "thinking"])
    socket = await connected(socket_for, owner, conversation)

    await socket.send_json_to({"type": "send", "text": "Think hard about B-trees"})
    frames = await frames_until_final(socket)

    [sent] = offline_model_reset.received
    assert sent["model"] == TAKES_MAX
    assert (sent["thinking"], sent["output_config"]) == ({"type": "adaptive"}, {"effort": "max"})
    assert frames[-1]["message"]["status"] == "complete"
    await socket.disconnect()
