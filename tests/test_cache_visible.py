"""Cache you can see: each reply's cache numbers, the conversation's cache expiry, the 1-hour TTL where it pays,
long documents held for an hour, and what breaking a warm prefix would cost."""

import json
from datetime import timedelta
from decimal import Decimal
from itertools import product

import pytest
from channels.db import database_sync_to_async
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone
from document_samples import uploaded
from test_consumer import connected, frames_until_final
from transcripts import message_appended

from billing.ledger import UpstreamAttempt, UpstreamRequest, ledger_record
from chat import cache_stats, services
from chat.attachments import services as attachment_services
from chat.forms import ConversationSettingsForm
from chat.llm import cache_plan
from chat.llm.catalog import model_spec
from chat.llm.offline.prompt import InvalidRequest, read_prompt
from chat.llm.pricing import TokenUsage
from chat.llm.request import request_build
from chat.models import ApiCall, CacheTtl, Message

LONG_SYSTEM_PROMPT = "You are a patient tutor for database internals. Explain with small examples. " * 60
MILLION = Decimal(1_000_000)
H, M = cache_plan.ONE_HOUR, cache_plan.FIVE_MINUTES


def cache_controls(request: dict) -> list[dict]:
    """The request's breakpoints in the API's cache order: tools, system, messages."""
    blocks = [*request.get("tools", []), *request.get("system", [])]
    blocks += [block for message in request["messages"] for block in message["content"]]
    return [block["cache_control"] for block in blocks if "cache_control" in block]


# --- the rules (chat/llm/cache_plan.py) ---------------------------------------------------------------------


def test_a_conversation_set_to_one_hour_holds_every_breakpoint_for_an_hour():
    assert cache_plan.breakpoint_ttls([0, 3, 9], [], H) == [H, H, H]


def test_a_long_document_holds_its_breakpoint_and_every_earlier_one_for_an_hour():
    assert cache_plan.breakpoint_ttls([0, 5, 9], [5], M) == [H, H, M]


def test_a_long_document_without_its_own_breakpoint_is_held_by_the_next_one():
    assert cache_plan.breakpoint_ttls([0, 3, 9], [5], M) == [H, H, H]
    assert cache_plan.breakpoint_ttls([0, 3], [5], M) == [M, M]  # nothing after it caches it
    assert cache_plan.breakpoint_ttls([0, 3, 9], [], M) == [M, M, M]


def test_the_ttls_are_always_in_the_order_the_api_accepts():
    for breakpoints in ([0], [0, 4], [1, 4, 7], [0, 2, 4, 6]):
        for long_documents in ([], [0], [3], [5], [2, 6], [8]):
            for ttl in (M, H):
                assert cache_plan.ttls_in_valid_order(cache_plan.breakpoint_ttls(breakpoints, long_documents, ttl))
    assert not cache_plan.ttls_in_valid_order([M, H])
    assert all(cache_plan.ttls_in_valid_order(list(ttls)) == (list(ttls) != [M, H]) for ttls in product((M, H), repeat=2))


def test_one_hour_pays_when_the_typical_pause_is_between_five_and_sixty_minutes():
    minutes = lambda *values: [timedelta(minutes=value) for value in values]
    assert not cache_plan.one_hour_pays([])
    assert not cache_plan.one_hour_pays(minutes(1, 2, 3))
    assert cache_plan.one_hour_pays(minutes(12, 20, 2))
    assert not cache_plan.one_hour_pays(minutes(90, 120, 70))


def test_the_break_even_arithmetic_of_a_long_document():
    """One pause of 5 to 60 minutes: 5 minutes writes the document twice (2 × 1.25), 1 hour once (2)."""
    prices = model_spec("claude-sonnet-5-5").prices
    tokens = 20_000
    five_minutes = 2 * tokens * prices.cache_write_5m
    one_hour = tokens * prices.cache_write_1h + tokens * prices.cache_read
    assert one_hour < five_minutes
    assert cache_plan.document_wants_one_hour(20_000, 20_000)
    assert not cache_plan.document_wants_one_hour(19_999, 20_000)


def test_saved_and_rewrite_are_priced_from_the_snapshot():
    snapshot = {"input": Decimal(3), "cache_read": Decimal("0.3"), "cache_write_5m": Decimal("3.75"),
                "cache_write_1h": Decimal(6)}
    saved = cache_plan.saved_by_cache(read=1_000_000, written_5m=0, written_1h=0, prices=snapshot)
    cost = cache_plan.saved_by_cache(read=0, written_5m=1_000_000, written_1h=1_000_000, prices=snapshot)
    rewrite = cache_plan.rewrite_estimate(2_000, write_price=Decimal("3.75"), read_price=Decimal("0.3"))

    assert saved == Decimal("2.7")
    assert cost == Decimal("-3.75")  # 0.75 over input for 5 minutes, 3 for 1 hour
    assert (rewrite.tokens, rewrite.dollars) == (2_000, Decimal("0.0069"))


def test_the_settings_dialog_says_how_far_apart_the_last_turns_were():
    advice = cache_plan.ttl_advice([timedelta(minutes=11), timedelta(minutes=14), timedelta(minutes=3)])
    assert advice == "Your last 4 turns were typically 11 min apart: 1 hour would pay."
    assert cache_plan.ttl_advice([timedelta(seconds=20)]).endswith("under a minute apart: 5 minutes is the cheaper choice.")
    assert cache_plan.ttl_advice([]) == ""


# --- requests ------------------------------------------------------------------------------------------------


@pytest.fixture
def media_root(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path
    return tmp_path


def turn_with_document(conversation, owner, text: str, name: str, data: bytes) -> Message:
    message = message_appended(conversation, role="user", content=[])
    attachments = uploaded(owner, name, data)
    attachment_services.attachments_claim(attachments=attachments, message=message)
    message.content = [*({"type": "attachment", "attachment_id": a.pk} for a in attachments),
                       {"type": "text", "text": text}]
    message.save()
    return message


@pytest.mark.django_db
def test_a_long_document_gets_a_one_hour_breakpoint_in_a_five_minute_conversation(
    conversation, owner, settings, media_root
):
    settings.CACHE_1H_MIN_TOKENS = 2_000
    conversation.system_prompt = "Be brief."
    conversation.save()
    turn_with_document(conversation, owner, "Summarise", "report.txt", b"A long report line. " * 600)
    message_appended(conversation, role="assistant", text="A report.")
    turn_with_document(conversation, owner, "And this?", "small.txt", b"A short note. " * 20)
    message_appended(conversation, role="assistant", text="A note.")
    message_appended(conversation, role="user", text="Which is longer?")
    reply = message_appended(conversation, role="assistant", status="streaming")

    request = request_build(conversation, reply=reply)

    blocks = [block for message in request["messages"] for block in message["content"]]
    report = next(block for block in blocks if block.get("title") == "report.txt")
    small = next(block for block in blocks if block.get("title") == "small.txt")
    assert report["cache_control"] == {"type": "ephemeral", "ttl": "1h"}
    assert small["cache_control"] == {"type": "ephemeral"}  # under the minimum, and after it: 5 minutes
    assert request["system"][-1]["cache_control"]["ttl"] == "1h"  # before it, so also an hour
    assert blocks[-1]["cache_control"] == {"type": "ephemeral"}  # the latest turn: 5 minutes
    read_prompt({**request, "stream": True})  # the offline model, like the API, accepts the order


@pytest.mark.django_db
def test_a_long_project_file_holds_the_projects_prefix_for_an_hour(owner, settings, media_root):
    from projects import services as project_services

    settings.CACHE_1H_MIN_TOKENS = 300
    project = project_services.project_create(owner=owner, name="Storage engine")
    [notes] = uploaded(owner, "notes.txt", b"Pages split at 70% full; keys are sorted within a page.\n" * 30)
    project_services.project_files_add(project=project, attachment_ids=[notes.pk], user=owner)
    conversation = project_services.project_conversation_create(project=project, owner=owner)
    message_appended(conversation, role="user", text="How do pages split?")
    reply = message_appended(conversation, role="assistant", status="streaming")

    request = request_build(conversation, reply=reply)

    first_turn = request["messages"][0]["content"]
    assert first_turn[0]["title"] == "notes.txt"
    assert first_turn[0]["cache_control"] == {"type": "ephemeral", "ttl": "1h"}
    assert request["tools"][-1]["cache_control"]["ttl"] == "1h"  # the tools come before it
    assert first_turn[-1]["cache_control"] == {"type": "ephemeral"}
    read_prompt({**request, "stream": True})


def test_the_offline_model_refuses_a_one_hour_breakpoint_after_a_five_minute_one():
    request = {
        "model": "claude-sonnet-5-5", "max_tokens": 100,
        "system": [{"type": "text", "text": "Be brief.", "cache_control": {"type": "ephemeral"}}],
        "messages": [{"role": "user", "content": [
            {"type": "text", "text": "Hi", "cache_control": {"type": "ephemeral", "ttl": "1h"}},
        ]}],
    }
    with pytest.raises(InvalidRequest, match="must not come after"):
        read_prompt(request)


# --- real turns through the offline model ---------------------------------------------------------------------

turns = pytest.mark.usefixtures("generations_drained")


async def set_conversation(conversation, **fields):
    for name, value in fields.items():
        setattr(conversation, name, value)
    await database_sync_to_async(conversation.save)()


async def two_turns(socket_for, owner, conversation) -> tuple[dict, dict]:
    socket = await connected(socket_for, owner, conversation)
    finals = []
    for text in ("What is a B-tree?", "And a B+ tree?"):
        await socket.send_json_to({"type": "send", "text": text})
        finals.append((await frames_until_final(socket))[-1]["message"])
    return finals[0], finals[1]


@turns
@pytest.mark.django_db(transaction=True)
async def test_the_one_hour_ttl_goes_upstream_and_is_billed_at_twice_input(
    socket_for, owner, conversation, offline_model_reset
):
    await set_conversation(conversation, system_prompt=LONG_SYSTEM_PROMPT, cache_ttl=CacheTtl.ONE_HOUR)
    first, _ = await two_turns(socket_for, owner, conversation)

    request = offline_model_reset.received[0]
    assert cache_controls(request) and all(
        control == {"type": "ephemeral", "ttl": "1h"} for control in cache_controls(request)
    )
    call = await database_sync_to_async(ApiCall.objects.filter(message_id=first["id"]).get)()
    assert call.cache_creation_1h_input_tokens > 1000 and call.cache_creation_5m_input_tokens == 0
    prices = model_spec(call.model).prices
    expected = (call.input_tokens * prices.input + call.output_tokens * prices.output
                + call.cache_creation_1h_input_tokens * prices.input * 2) / MILLION
    assert call.cost == expected.quantize(Decimal("0.000001"))
    assert first["cache"]["warmth"]["ttl"] == "1h"


@turns
@pytest.mark.django_db(transaction=True)
async def test_each_finished_reply_says_what_the_cache_saved_or_cost(socket_for, owner, conversation):
    await set_conversation(conversation, system_prompt=LONG_SYSTEM_PROMPT)
    before = timezone.now()
    first, second = await two_turns(socket_for, owner, conversation)
    after = timezone.now()

    assert first["cache"]["hit_share"] == 0 and Decimal(first["cache"]["saved"]) < 0  # a write costs
    assert 0 < second["cache"]["hit_share"] < 1 and Decimal(second["cache"]["saved"]) > 0
    call = await database_sync_to_async(ApiCall.objects.filter(message_id=second["id"]).get)()
    prices = model_spec(call.model).prices
    all_input = call.input_tokens + call.cache_read_input_tokens + call.cache_creation_input_tokens
    assert second["cache"]["read_tokens"] == call.cache_read_input_tokens
    assert second["cache"]["hit_share"] == round(call.cache_read_input_tokens / all_input, 4)
    saved = (call.cache_read_input_tokens * (prices.input - prices.cache_read)
             - call.cache_creation_5m_input_tokens * (prices.cache_write_5m - prices.input)) / MILLION
    assert Decimal(second["cache"]["saved"]) == saved.quantize(Decimal("0.000001"))

    warmth = second["cache"]["warmth"]
    expires = timezone.datetime.fromisoformat(warmth["expires_at"].replace("Z", "+00:00"))
    assert before + timedelta(minutes=5) <= expires <= after + timedelta(minutes=5)
    assert warmth["ttl"] == "5m" and warmth["prefix_tokens"] == all_input - call.input_tokens


@turns
@pytest.mark.django_db(transaction=True)
async def test_the_page_shows_past_replies_cache_numbers_and_the_expiry(socket_for, owner, conversation, client):
    await set_conversation(conversation, system_prompt=LONG_SYSTEM_PROMPT)
    first, second = await two_turns(socket_for, owner, conversation)
    await database_sync_to_async(client.force_login)(owner)

    response = await database_sync_to_async(client.get)(reverse("conversation_detail", args=[conversation.pk]))

    tree = json.loads(_script(response, "tree-data"))
    shown = {message["id"]: message.get("cache") for message in tree["messages"]}
    assert {key: shown[second["id"]][key] for key in ("hit_share", "saved")} == {
        key: second["cache"][key] for key in ("hit_share", "saved")
    }
    assert shown[first["id"]]["written_tokens"] > 0
    warmth = json.loads(_script(response, "cache-warmth"))
    assert warmth == second["cache"]["warmth"]


def _script(response, element_id: str) -> str:
    html = response.content.decode()
    start = html.index(f'id="{element_id}"')
    return html[html.index(">", start) + 1: html.index("</script>", start)]


# --- the page's queries and the warning's estimate -------------------------------------------------------------


def conversation_of(owner, exchanges: int):
    conversation = services.conversation_create(owner=owner)
    conversation.system_prompt = "Be brief."
    conversation.save()
    for number in range(exchanges):
        message_appended(conversation, role="user", text=f"Question {number}")
        reply = message_appended(conversation, role="assistant", text="Answer", model="claude-sonnet-5-5")
        usage = TokenUsage(input_tokens=20, output_tokens=10, cache_read_input_tokens=1000 * number,
                           cache_creation_5m_input_tokens=1000)
        ledger_record(
            [UpstreamRequest("claude-sonnet-5-5", [UpstreamAttempt(200)], usage, latency_ms=1500)],
            user_id=owner.pk, conversation_id=conversation.pk, message=reply, settle_key=f"{reply.pk}:t",
        )
    return conversation


@pytest.mark.django_db
def test_the_page_makes_the_same_queries_for_two_and_twenty_messages(client, owner):
    client.force_login(owner)
    counts = []
    for exchanges in (1, 10):
        conversation = conversation_of(owner, exchanges)
        with CaptureQueriesContext(connection) as queries:
            response = client.get(reverse("conversation_detail", args=[conversation.pk]))
        assert response.status_code == 200
        assert len(json.loads(_script(response, "tree-data"))["messages"]) == 2 * exchanges
        counts.append(len(queries))
    assert counts[0] == counts[1]


@pytest.mark.django_db
def test_the_warning_estimates_the_prefix_written_again_at_the_write_less_the_read_price(owner):
    conversation = conversation_of(owner, 3)  # the last request read 2,000 and wrote 1,000

    warmth = cache_stats.conversation_cache(conversation, [])[1]
    prices = model_spec("claude-sonnet-5-5").prices
    assert warmth.prefix_tokens == 3_000
    assert warmth.rewrite.dollars == 3_000 * (prices.cache_write_5m - prices.cache_read) / MILLION
    last = ApiCall.objects.filter(conversation=conversation).order_by("-id").first()
    assert warmth.expires_at == last.created_at - timedelta(milliseconds=1500) + timedelta(minutes=5)

    conversation.cache_ttl = CacheTtl.ONE_HOUR
    one_hour = cache_stats.conversation_cache(conversation, [])[1]
    assert one_hour.rewrite.dollars == 3_000 * (prices.cache_write_1h - prices.cache_read) / MILLION


@pytest.mark.django_db
def test_a_conversation_that_never_cached_has_no_expiry(conversation):
    assert cache_stats.conversation_cache(conversation, [])[1] is None


# --- the Settings dialog's TTL ----------------------------------------------------------------------------------


@pytest.mark.django_db
def test_the_settings_dialog_stores_the_ttl_and_keeps_it_when_left_out(client, owner, conversation):
    client.force_login(owner)
    url = reverse("conversation_settings", args=[conversation.pk])

    client.post(url, {"system_prompt": "", "thinking": "off", "cache_ttl": "1h"})
    conversation.refresh_from_db()
    assert conversation.cache_ttl == CacheTtl.ONE_HOUR
    client.post(url, {"system_prompt": "Be terse.", "thinking": "off"})
    conversation.refresh_from_db()
    assert (conversation.cache_ttl, conversation.system_prompt) == (CacheTtl.ONE_HOUR, "Be terse.")
    refused = client.post(url, {"system_prompt": "", "thinking": "off", "cache_ttl": "1d"})
    assert refused.status_code == 400
    conversation.refresh_from_db()
    assert conversation.cache_ttl == CacheTtl.ONE_HOUR


@pytest.mark.django_db
def test_the_settings_dialog_advises_from_the_conversations_own_pauses(owner, conversation):
    base = timezone.now() - timedelta(hours=1)
    for minutes in (0, 12, 25):
        message = message_appended(conversation, role="user", text="Q")
        Message.objects.filter(pk=message.pk).update(created_at=base + timedelta(minutes=minutes))
        message_appended(conversation, role="assistant", text="A")
    messages = list(conversation.messages.order_by("id"))

    form = ConversationSettingsForm(instance=conversation, turn_gaps=cache_stats.turn_gaps(messages))

    assert form.fields["cache_ttl"].help_text.endswith(
        "Your last 3 turns were typically 12 min apart: 1 hour would pay."
    )


@pytest.mark.django_db
def test_outsiders_get_404_from_the_page_and_the_settings(client, outsider, owner):
    conversation = conversation_of(owner, 1)
    client.force_login(outsider)
    assert client.get(reverse("conversation_detail", args=[conversation.pk])).status_code == 404
    url = reverse("conversation_settings", args=[conversation.pk])
    assert client.post(url, {"system_prompt": "", "thinking": "off", "cache_ttl": "1h"}).status_code == 404
    conversation.refresh_from_db()
    assert conversation.cache_ttl == CacheTtl.FIVE_MINUTES
