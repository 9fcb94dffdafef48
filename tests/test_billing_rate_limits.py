"""Per-user rate limits: requests and tokens per minute, in the shared cache, with a time to retry."""

import uuid
from decimal import Decimal

import pytest
from channels.db import database_sync_to_async
from django.core.cache import caches

from billing import services
from chat import services as chat_services
from chat.llm.pricing import TokenUsage
from chat.models import Message
from tests.cluster import REDIS_URL, RUN_REDIS_PREFIX, redis_reachable, require

pytestmark = pytest.mark.django_db

# 20 seconds into a minute: the window resets in 40 seconds.
PINNED_NOW = 60 * 28_000_000 + 20.0


@pytest.fixture(autouse=True)
def pinned_clock(monkeypatch):
    """A fixed moment, so no window boundary falls in the middle of a test."""
    monkeypatch.setattr(services, "clock", lambda: PINNED_NOW)


@pytest.fixture
def counter_evicted(monkeypatch):
    """`counter_evicted("incr")` has the cache drop the counter that the next `incr` is about to count into,
    as a full local-memory cache (or Redis under maxmemory) may between any two calls."""
    backend = caches["default"]

    def arm(method: str) -> None:
        real = getattr(backend, method)

        def after_eviction(key, delta=1, version=None):
            monkeypatch.setattr(backend, method, real)
            backend.delete(key, version=version)
            return real(key, delta, version)

        monkeypatch.setattr(backend, method, after_eviction)

    return arm


def admit(user, conversation, text="Hello"):
    services.request_admit(
        user=user, conversation=conversation, text=text, model="claude-sonnet-5-5", max_tokens=4096
    )


def refusal(user, conversation, text="Hello") -> services.RequestRefused:
    with pytest.raises(services.RequestRefused) as refused:
        admit(user, conversation, text)
    return refused.value


def test_requests_over_the_limit_are_refused_with_the_time_to_retry(owner, conversation, settings):
    settings.CHAT_RATE_LIMIT_REQUESTS_PER_MINUTE = 2
    admit(owner, conversation)
    admit(owner, conversation)

    refused = refusal(owner, conversation)

    assert (refused.code, refused.retry_after) == ("rate_limited", 40)
    assert "2 requests a minute" in refused.detail and "40 seconds" in refused.detail


def test_the_next_minute_starts_afresh(owner, conversation, settings, monkeypatch):
    settings.CHAT_RATE_LIMIT_REQUESTS_PER_MINUTE = 1
    admit(owner, conversation)
    refusal(owner, conversation)

    monkeypatch.setattr(services, "clock", lambda: PINNED_NOW + 40)

    admit(owner, conversation)


def test_each_user_has_their_own_window(owner, outsider, conversation, settings):
    settings.CHAT_RATE_LIMIT_REQUESTS_PER_MINUTE = 1
    admit(owner, conversation)

    admit(outsider, chat_services.conversation_create(owner=outsider))


def test_a_users_own_limit_overrides_the_site_default(owner, conversation, settings):
    settings.CHAT_RATE_LIMIT_REQUESTS_PER_MINUTE = 1
    owner.rate_limit_requests_per_minute = 0  # no limit
    owner.save()

    for _ in range(5):
        admit(owner, conversation)


def test_tokens_over_the_limit_are_refused(owner, conversation, settings):
    settings.CHAT_RATE_LIMIT_TOKENS_PER_MINUTE = 1_000
    admit(owner, conversation, "x" * 2_400)  # about 600 tokens

    refused = refusal(owner, conversation, "x" * 2_400)

    assert refused.code == "rate_limited" and "1,000 tokens a minute" in refused.detail
    assert refused.retry_after == 40


def test_one_request_larger_than_the_token_limit_passes_alone(owner, conversation, settings):
    settings.CHAT_RATE_LIMIT_TOKENS_PER_MINUTE = 100

    admit(owner, conversation, "x" * 2_000)


def test_output_tokens_count_when_the_reply_is_settled(owner, conversation, settings):
    settings.CHAT_RATE_LIMIT_TOKENS_PER_MINUTE = 1_000
    admit(owner, conversation, "short")

    chat_services.message_finish(
        message_id=0, user_id=owner.pk, conversation_id=conversation.pk, status="complete", content=[], seq=0,
        model="claude-sonnet-5-5", usage=TokenUsage(input_tokens=5, output_tokens=1_000), attempts=[],
    )

    assert refusal(owner, conversation, "short").code == "rate_limited"


def test_a_request_refused_for_tokens_does_not_use_a_request(owner, conversation, settings):
    settings.CHAT_RATE_LIMIT_REQUESTS_PER_MINUTE = 2
    settings.CHAT_RATE_LIMIT_TOKENS_PER_MINUTE = 1_000
    admit(owner, conversation, "x" * 2_400)
    refusal(owner, conversation, "x" * 2_400)

    admit(owner, conversation, "short")


def test_a_request_refused_for_its_budget_uses_no_quota(owner, conversation, settings):
    settings.CHAT_RATE_LIMIT_REQUESTS_PER_MINUTE = 1
    owner.monthly_budget = Decimal("0")
    owner.save()
    assert refusal(owner, conversation).code == "budget_exceeded"
    owner.monthly_budget = None
    owner.save()

    admit(owner, conversation)


def test_the_limit_holds_while_many_other_users_are_counted(owner, conversation, settings, django_user_model):
    """On the single-machine cache: at Django's default of 300 entries, the windows of 500 users evicted the
    first user's, and their limit was lifted."""
    settings.CHAT_RATE_LIMIT_REQUESTS_PER_MINUTE = 1
    admit(owner, conversation)
    others = [django_user_model(username=f"user-{i}") for i in range(500)]
    for other in django_user_model.objects.bulk_create(others):
        admit(other, conversation)

    assert refusal(owner, conversation).code == "rate_limited"


def test_a_window_evicted_before_it_is_counted_into_counts_the_request(
    owner, conversation, settings, counter_evicted
):
    settings.CHAT_RATE_LIMIT_REQUESTS_PER_MINUTE = 1
    counter_evicted("incr")

    admit(owner, conversation)

    assert refusal(owner, conversation).code == "rate_limited"


def test_output_tokens_count_into_a_window_evicted_while_the_reply_ran(
    owner, conversation, settings, counter_evicted
):
    settings.CHAT_RATE_LIMIT_TOKENS_PER_MINUTE = 1_000
    admit(owner, conversation, "short")
    counter_evicted("incr")

    services.usage_settle(user_id=owner.pk, usage=TokenUsage(input_tokens=5, output_tokens=1_000))

    assert refusal(owner, conversation, "short").code == "rate_limited"


def test_a_refusal_whose_window_was_evicted_is_still_a_refusal(
    owner, conversation, settings, counter_evicted
):
    settings.CHAT_RATE_LIMIT_TOKENS_PER_MINUTE = 1_000
    admit(owner, conversation, "x" * 2_400)
    counter_evicted("decr")  # before the refused tokens and the request are given back

    assert refusal(owner, conversation, "x" * 2_400).code == "rate_limited"


# --- across clients and processes -------------------------------------------------------------------------


async def sent(socket, text: str) -> list[dict]:
    """Send and collect frames until the reply is final or the send is refused."""
    await socket.send_json_to({"type": "send", "text": text})
    frames = []
    while True:
        frame = await socket.receive_json_from(timeout=10)
        frames.append(frame)
        if frame["type"] == "error":
            return frames
        if frame["type"] == "message" and frame["message"]["role"] == "assistant" and frame["message"]["status"] != "streaming":
            return frames


async def limit_holds_across_two_sockets(socket_for, owner):
    """Two sockets of one user, on two conversations: the second socket's requests count against the first's."""
    first_conversation, second_conversation = [
        await database_sync_to_async(chat_services.conversation_create)(owner=owner) for _ in range(2)
    ]
    first = await socket_for(owner, first_conversation.pk)
    second = await socket_for(owner, second_conversation.pk)
    assert (await first.connect())[0] and (await second.connect())[0]

    assert (await sent(first, "One"))[-1]["message"]["status"] == "complete"
    assert (await sent(second, "Two"))[-1]["message"]["status"] == "complete"
    refused = (await sent(first, "Three"))[-1]

    assert (refused["type"], refused["code"], refused["retry_after"]) == ("error", "rate_limited", 40)
    stored = await database_sync_to_async(lambda: list(Message.objects.filter(role="user").values_list("content", flat=True)))()
    assert [content[0]["text"] for content in stored] == ["One", "Two"]


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("generations_drained")
async def test_the_limit_holds_across_two_clients(socket_for, owner, settings):
    settings.CHAT_RATE_LIMIT_REQUESTS_PER_MINUTE = 2
    await limit_holds_across_two_sockets(socket_for, owner)


@pytest.fixture
def redis_cache(settings):
    """The cache on the test Redis (tests/cluster.py), under a key prefix no other test or run uses."""
    require(redis_reachable(), "Redis")
    settings.CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": f"{RUN_REDIS_PREFIX}-{uuid.uuid4().hex[:8]}",
        }
    }


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("generations_drained", "redis_cache")
async def test_the_limit_holds_across_two_clients_on_redis(socket_for, owner, settings):
    settings.CHAT_RATE_LIMIT_REQUESTS_PER_MINUTE = 2
    await limit_holds_across_two_sockets(socket_for, owner)
