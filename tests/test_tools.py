"""The built-in tools: what they answer, what they refuse, whom they answer for, and how they run together."""

import asyncio
import json
import threading
import time

import pytest
from anthropic import beta_tool
from django.urls import reverse
from django.utils import timezone

from chat import services
from chat.llm import tools
from chat.llm.request import request_build
from chat.models import Message, ToolSetting

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(
    ("expression", "answer"),
    [
        ("17*23", "391"),
        ("2^10", "1024"),
        ("(1 + 2) * 3", "9"),
        ("-4 + 10 / 4", "-1.5"),
        ("7 // 2 + 7 % 4", "6"),
        ("0.1 + 0.2", "0.3"),
        ("2 ** -1", "0.5"),
    ],
)
def test_the_calculator_does_arithmetic(expression, answer):
    assert tools.calculator.call({"expression": expression}) == answer


@pytest.mark.parametrize(
    ("expression", "complaint"),
    [
        ("__import__('os').system('true')", "not Call"),
        ("x + 1", "not Name"),
        ("(1).real", "not Attribute"),
        ("[1, 2]", "not List"),
        ("True + 1", "not Constant"),
        ("1 / 0", "Division by zero"),
        ("(-8) ** 0.5", "not a real number"),
        ("1 +", "not an arithmetic expression"),
        ("1" * 201, "longer than 200"),
    ],
)
def test_the_calculator_refuses_anything_but_arithmetic(expression, complaint):
    with pytest.raises(ValueError, match=complaint):
        tools.calculate(expression)


@pytest.mark.parametrize("expression", ["9**9**9", "2 ** 100000", "10**3000 * 10**3000", "(10**3000) ** 4"])
def test_huge_powers_are_refused_before_they_are_computed(expression):
    started = time.monotonic()

    with pytest.raises(ValueError, match="too large"):
        tools.calculate(expression)

    assert time.monotonic() - started < 0.5


def test_the_current_time_is_in_the_users_time_zone(owner, conversation):
    context = tools.ToolContext(owner.pk, "Asia/Tokyo", conversation.pk)
    current_time = tools.tools_for(context, ["current_time"])[0]

    answer = current_time.call({})

    assert answer.endswith(", Asia/Tokyo)") and "+09:00" in answer
    assert answer[:10] == timezone.now().astimezone(timezone.get_fixed_timezone(540)).date().isoformat()


def message_in(conversation, role, text):
    return Message.objects.create(conversation=conversation, role=role, content=[{"type": "text", "text": text}])


def test_search_finds_the_users_own_messages_in_other_conversations_only(owner, outsider, conversation):
    earlier = services.conversation_create(owner=owner)
    earlier.title = "Indexes"
    earlier.save()
    message_in(earlier, "user", "How do B-trees stay balanced?")
    message_in(conversation, "user", "Search my conversations for b-trees")
    theirs = services.conversation_create(owner=outsider)
    message_in(theirs, "user", "My secret B-tree notes")
    search = tools.tools_for(tools.ToolContext(owner.pk, "UTC", conversation.pk), ["search_conversations"])[0]

    matches = json.loads(search.call({"query": "B-TREE"}))

    assert [(m["conversation"], m["author"], m["excerpt"]) for m in matches] == [
        ("Indexes", "user", "How do B-trees stay balanced?")
    ]
    assert search.call({"query": "secret"}) == "No message in the user's other conversations contains 'secret'."


def test_an_empty_search_is_an_input_error(owner, conversation):
    search = tools.tools_for(tools.ToolContext(owner.pk, "UTC", conversation.pk), ["search_conversations"])[0]

    with pytest.raises(ValueError, match="empty"):
        search.call({"query": "  "})


async def test_calls_in_one_turn_run_concurrently():
    """Each call waits for the other to start: they only finish if they run at the same time."""
    both_started = threading.Barrier(2, timeout=5)

    @beta_tool
    def meet(name: str) -> str:
        """Wait for the other call."""
        both_started.wait()
        return f"met {name}"

    calls = [
        {"type": "tool_use", "id": "a", "name": "meet", "input": {"name": "A"}},
        {"type": "tool_use", "id": "b", "name": "meet", "input": {"name": "B"}},
    ]

    results = await asyncio.wait_for(tools.tool_results(calls, [meet]), timeout=10)

    assert results == [
        {"type": "tool_result", "tool_use_id": "a", "content": "met A"},
        {"type": "tool_result", "tool_use_id": "b", "content": "met B"},
    ]


async def test_failures_become_error_results_the_model_can_read():
    @beta_tool
    def broken() -> str:
        """Always fails."""
        raise RuntimeError("database password is hunter2")

    calls = [
        {"type": "tool_use", "id": "1", "name": "calculator", "input": {"expression": "1/0"}},
        {"type": "tool_use", "id": "2", "name": "calculator", "input": {"formula": "1+1"}},
        {"type": "tool_use", "id": "3", "name": "broken", "input": {}},
        {"type": "tool_use", "id": "4", "name": "rm_rf", "input": {}},
    ]

    results = await tools.tool_results(calls, [tools.calculator, broken])

    assert all(result["is_error"] for result in results)
    division, wrong_input, crashed, unknown = (result["content"] for result in results)
    assert division == "Division by zero."
    assert "Invalid arguments for function calculator" in wrong_input and "expression: Missing" in wrong_input
    assert crashed == "The tool failed unexpectedly." and "hunter2" not in crashed
    assert "no tool called 'rm_rf'" in unknown


def test_requests_offer_the_enabled_tools_with_a_breakpoint_on_the_last(conversation):
    ToolSetting.objects.create(name="current_time", enabled=False)
    message_in(conversation, "user", "Hello")
    reply = Message.objects.create(conversation=conversation, role="assistant", status="streaming")

    request = request_build(conversation, reply=reply)

    assert [tool["name"] for tool in request["tools"]] == ["calculator", "search_conversations"]
    assert [("cache_control" in tool) for tool in request["tools"]] == [False, True]
    assert request["tools"][0]["input_schema"]["required"] == ["expression"]


def test_an_admin_switches_a_tool_off_by_name(client, django_user_model):
    client.force_login(django_user_model.objects.create_superuser("admin", "admin@example.com", "x-admin-pass-1"))

    form = client.get(reverse("admin:chat_toolsetting_add")).content.decode()
    response = client.post(reverse("admin:chat_toolsetting_add"), {"name": "search_conversations", "enabled": ""})
    refused = client.post(reverse("admin:chat_toolsetting_add"), {"name": "shell", "enabled": "on"})

    assert '<option value="search_conversations">' in form
    assert response.status_code == 302
    assert list(ToolSetting.objects.values_list("name", "enabled")) == [("search_conversations", False)]
    assert refused.status_code == 200 and "Select a valid choice" in refused.content.decode()
