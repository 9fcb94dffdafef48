"""Models that retire gracefully: the lifecycle table, the picker's labels, no request to a retired model, the
move to a successor, the admins' notices, and the Models API's dates."""

import importlib
from datetime import date, datetime, timedelta

import httpx2
import pytest
from anthropic import AsyncAnthropic
from anthropic.types import ModelInfo
from channels.db import database_sync_to_async
from django.apps import apps
from django.core import mail
from django.core.management import call_command
from django.db import OperationalError
from django.urls import reverse
from django.utils import timezone
from test_consumer import TIMEOUT, connected, frames_until_final

from audit.models import AuditEvent
from billing.models import Reservation
from chat import services as chat_services
from chat.llm import registry, routing
from chat.models import ApiCall, Conversation, Message
from chat.views import model_choices
from lifecycle import selectors, services
from lifecycle.models import ModelLifecycle, RetirementNotice

pytestmark = pytest.mark.django_db

SONNET_OLD, SONNET_NEW = "claude-sonnet-4-6", "claude-sonnet-5-5"


# The day these tests live on, whatever the real date: the seeded retirements (2027) lie ahead of it.
TODAY = date(2026, 12, 1)
seeding = importlib.import_module("lifecycle.migrations.0002_builtin_list")


def today() -> date:
    return TODAY


@pytest.fixture(autouse=True)
def built_in_list(monkeypatch):
    """The lifecycle's clock pinned to TODAY, and the built-in list seeded by the migration's own function
    (conftest empties the table every other test file sees)."""
    monkeypatch.setattr(ModelLifecycle, "today", staticmethod(today))
    seeding.seed_lifecycles(apps, None)


@pytest.fixture
def table_read():
    """The seeded table as a process reads it (conftest makes every test start with it unread and empty)."""
    selectors.lifecycles_forget()


def retire(model_id: str, *, days_ago: int = 1, successor: str = "") -> ModelLifecycle:
    row, _ = ModelLifecycle.objects.update_or_create(
        model=model_id, defaults={"retires_on": today() - timedelta(days=days_ago), **(
            {"successor": successor} if successor else {}
        )},
    )
    return row


# --- the table -------------------------------------------------------------------------------------------


def test_the_built_in_list_is_seeded_with_2027_retirements_and_a_5_5_successor_each():
    rows = {row.model: row for row in ModelLifecycle.objects.all()}

    assert set(rows) == {"claude-haiku-4-5", "claude-sonnet-4-6", "claude-opus-4-6"}
    for model, _, _, successor in seeding.ANNOUNCED:
        row = rows[model]
        assert (row.source, row.successor) == (ModelLifecycle.Source.BUILT_IN, successor)
        assert row.retires_on.year == 2027 and row.deprecated_on < row.retires_on
        assert row.successor.endswith("-5-5") and row.successor.split("-")[1] == row.model.split("-")[1]
    assert rows[SONNET_OLD].retires_on == date(2027, 3, 5)


def test_model_retired_answers_from_the_database_for_the_api_proxy():
    assert selectors.model_retired(SONNET_OLD) is None  # deprecated, not retired
    assert selectors.model_retired(SONNET_NEW) is None  # no row: active

    retire(SONNET_OLD)

    assert selectors.model_retired(SONNET_OLD).successor == SONNET_NEW


def test_a_model_is_retired_from_its_retirement_day_on():
    row = ModelLifecycle(model="claude-x", retires_on=date(2027, 3, 5))

    assert (row.deprecated(date(2027, 3, 4)), row.retired(date(2027, 3, 4))) == (True, False)
    assert (row.deprecated(date(2027, 3, 5)), row.retired(date(2027, 3, 5))) == (False, True)


# --- the picker ------------------------------------------------------------------------------------------


def test_the_picker_labels_deprecated_models_with_their_date_and_successor(table_read):
    choices = {choice["id"]: choice for choice in model_choices()}

    sonnet = choices[SONNET_OLD]
    assert sonnet["lifecycle"] == "deprecated"
    assert sonnet["description"].endswith("Deprecated: retires 5 Mar 2027, use Claude Sonnet 5.5.")
    assert "lifecycle" not in choices[SONNET_NEW]


def test_the_chat_page_marks_the_deprecated_option(client, owner, conversation, table_read):
    client.force_login(owner)

    body = client.get(reverse("conversation_detail", args=[conversation.pk])).content.decode()

    assert 'data-lifecycle="deprecated" label="Claude Haiku 4.5 · deprecated"' in body
    assert "Deprecated: retires 20 Jan 2027, use Claude Haiku 5.5." in body


def test_a_retired_model_is_never_offered_but_shows_as_the_conversations_own(client, owner, conversation):
    retire(SONNET_OLD)
    Conversation.objects.filter(pk=conversation.pk).update(model=SONNET_OLD)
    client.force_login(owner)

    assert not registry.model_offered(SONNET_OLD)
    assert SONNET_OLD not in {choice["id"] for choice in model_choices()}
    body = client.get(reverse("conversation_detail", args=[conversation.pk])).content.decode()
    assert f'value="{SONNET_OLD}"' in body and 'data-lifecycle="retired"' in body
    new_chat = client.get(reverse("home")).content.decode()
    assert f'value="{SONNET_OLD}"' not in new_chat


def test_a_new_chat_does_not_offer_the_users_retired_default(client, owner):
    retire(SONNET_OLD, successor=SONNET_NEW)
    owner.default_model = SONNET_OLD
    owner.save(update_fields=["default_model"])
    client.force_login(owner)

    new_chat = client.get(reverse("home")).content.decode()

    # The first message creates the conversation with the picker's model: a retired one would be refused.
    assert f'value="{SONNET_OLD}"' not in new_chat and 'data-lifecycle="retired"' not in new_chat


# --- routing ---------------------------------------------------------------------------------------------


def test_auto_and_the_fallback_never_go_to_a_retired_model():
    retire(SONNET_NEW)

    everyday = routing.route(registry.AUTO, text="What is a B-tree?", attachment_count=0)
    assert everyday.model == SONNET_OLD  # the newest sonnet still offered
    assert routing.fallback_model("claude-opus-5-5").id == SONNET_OLD

    retire(SONNET_OLD)
    assert routing.fallback_model("claude-opus-5-5").id == "claude-haiku-5-5"
    no_sonnet_left = routing.route(registry.AUTO, text="What is a B-tree?", attachment_count=0)
    assert registry.model_offered(no_sonnet_left.model)  # not the site's default, which is retired


def test_titles_are_never_written_by_a_retired_model():
    from chat.titles import title_model

    cheapest = title_model(100)
    retire(cheapest)

    assert title_model(100) != cheapest


# --- no request to a retired model ------------------------------------------------------------------------


def _nothing_sent(offline_model) -> bool:
    return not any(path.startswith("/v1/messages") for path in offline_model.requests_by_path)


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("model", [None, SONNET_OLD])
async def test_a_send_on_a_retired_model_is_refused_naming_the_successor_and_nothing_is_kept(
    socket_for, owner, conversation, offline_model_reset, model,
):
    """`model`: absent (the conversation's), or named, as the page's picker sends it."""
    await database_sync_to_async(lambda: (
        retire(SONNET_OLD, successor=SONNET_NEW), Conversation.objects.filter(pk=conversation.pk).update(model=SONNET_OLD)
    ))()
    socket = await connected(socket_for, owner, conversation)

    await socket.send_json_to({"type": "send", "text": "Still there?", **({"model": model} if model else {})})
    refusal = await socket.receive_json_from(timeout=TIMEOUT)

    retired_on = selectors.day_shown(today() - timedelta(days=1))
    assert refusal == {
        "type": "error", "code": "model_retired",
        "detail": f"Claude Sonnet 4.6 was retired on {retired_on}; switch this conversation to Claude Sonnet 5.5.",
        "successor": {"id": SONNET_NEW, "display_name": "Claude Sonnet 5.5"},
    }
    counts = await database_sync_to_async(
        lambda: (Message.objects.count(), Reservation.objects.count(), ApiCall.objects.count())
    )()
    assert counts == (0, 0, 0)
    assert _nothing_sent(offline_model_reset)


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("generations_drained")
async def test_regenerate_edit_and_continue_on_a_retired_model_are_refused(
    socket_for, owner, conversation, offline_model_reset,
):
    await database_sync_to_async(Conversation.objects.filter(pk=conversation.pk).update)(model=SONNET_OLD)
    socket = await connected(socket_for, owner, conversation)
    await socket.send_json_to({"type": "send", "text": "What is a B-tree?"})
    frames = await frames_until_final(socket)
    question = next(f["message"] for f in frames if f["type"] == "message" and f["message"]["role"] == "user")
    reply = frames[-1]["message"]
    await database_sync_to_async(lambda: (
        retire(SONNET_OLD, successor=SONNET_NEW),
        Message.objects.filter(pk=reply["id"]).update(stop_reason="max_tokens"),  # so that it may be continued
    ))()
    offline_model_reset.reset()

    for frame in (
        {"type": "regenerate"},
        {"type": "edit", "message": question["id"], "text": "What is a GiST index?"},
        {"type": "continue", "message": reply["id"]},
    ):
        await socket.send_json_to(frame)
        refusal = await socket.receive_json_from(timeout=TIMEOUT)
        assert (refusal["code"], refusal["successor"]["id"]) == ("model_retired", SONNET_NEW), frame

    assert await database_sync_to_async(Message.objects.count)() == 2
    assert await database_sync_to_async(Reservation.objects.count)() == 0
    assert _nothing_sent(offline_model_reset)


# --- a user's switch --------------------------------------------------------------------------------------


def test_the_page_switches_a_retired_conversation_to_the_successor(client, owner, conversation):
    retire(SONNET_OLD)
    Conversation.objects.filter(pk=conversation.pk).update(model=SONNET_OLD)
    client.force_login(owner)

    response = client.post(reverse("conversation_model_switch", args=[conversation.pk]))

    assert response.json() == {"model": SONNET_NEW, "display_name": "Claude Sonnet 5.5"}
    conversation.refresh_from_db()
    assert conversation.model == SONNET_NEW


def test_a_model_without_a_successor_cannot_be_switched_from(client, owner, conversation):
    Conversation.objects.filter(pk=conversation.pk).update(model=SONNET_NEW)
    client.force_login(owner)

    response = client.post(reverse("conversation_model_switch", args=[conversation.pk]))

    assert response.status_code == 400 and "no successor" in response.content.decode()
    conversation.refresh_from_db()
    assert conversation.model == SONNET_NEW


def test_an_outsider_cannot_switch_someone_elses_conversation(client, outsider, conversation):
    Conversation.objects.filter(pk=conversation.pk).update(model=SONNET_OLD)
    client.force_login(outsider)

    assert client.post(reverse("conversation_model_switch", args=[conversation.pk])).status_code == 404
    conversation.refresh_from_db()
    assert conversation.model == SONNET_OLD


# --- the admins -------------------------------------------------------------------------------------------


@pytest.fixture
def admin_user(django_user_model):
    return django_user_model.objects.create_superuser("admin", "admin@example.com", "x-admin-pass-1")


@pytest.fixture
def on_old_sonnet(owner, outsider):
    """Two conversations and one user's default on the old Sonnet, one conversation elsewhere."""
    for user in (owner, outsider):
        chat_services.conversation_create(owner=user, model=SONNET_OLD)
    chat_services.conversation_create(owner=owner, model="claude-haiku-5-5")
    owner.default_model = SONNET_OLD
    owner.save(update_fields=["default_model"])


def test_the_move_action_confirms_the_counts_then_moves_conversations_and_defaults(
    client, admin_user, owner, on_old_sonnet,
):
    client.force_login(admin_user)
    url = reverse("admin:lifecycle_modellifecycle_changelist")
    row = ModelLifecycle.objects.get(model=SONNET_OLD)
    chosen = {"action": "move_to_successor", "_selected_action": [row.pk]}

    confirm = client.post(url, chosen)
    assert "2 conversations and 1 user default" in " ".join(confirm.content.decode().split())
    assert Conversation.objects.filter(model=SONNET_OLD).count() == 2  # nothing moved before the yes

    done = client.post(url, {**chosen, "confirmed": "yes"}, follow=True)

    assert [str(message) for message in done.context["messages"]] == [
        f"{SONNET_OLD} → {SONNET_NEW}: 2 conversations and 1 user defaults moved."
    ]
    assert Conversation.objects.filter(model=SONNET_OLD).count() == 0
    assert Conversation.objects.filter(model=SONNET_NEW).count() == 2
    owner.refresh_from_db()
    assert owner.default_model == SONNET_NEW
    event = AuditEvent.objects.get(action="lifecycle.models_moved")
    assert (event.actor_name, event.detail) == ("admin", {"conversations": 2, "defaults": 1})


def test_the_move_action_moves_nothing_to_a_successor_that_has_retired(client, admin_user, owner, on_old_sonnet):
    client.force_login(admin_user)
    retire(SONNET_NEW)
    row = ModelLifecycle.objects.get(model=SONNET_OLD)

    done = client.post(reverse("admin:lifecycle_modellifecycle_changelist"), {
        "action": "move_to_successor", "_selected_action": [row.pk], "confirmed": "yes",
    }, follow=True)

    assert [str(message) for message in done.context["messages"]] == [
        f"No successor on offer, nothing moved: {SONNET_OLD}."
    ]
    assert Conversation.objects.filter(model=SONNET_OLD).count() == 2


def test_an_admins_edit_marks_the_row_as_theirs(client, admin_user):
    client.force_login(admin_user)
    row = ModelLifecycle.objects.get(model=SONNET_OLD)

    client.post(reverse("admin:lifecycle_modellifecycle_change", args=[row.pk]), {
        "model": SONNET_OLD, "deprecated_on": "2026-11-05", "retires_on": "2027-06-30", "successor": SONNET_NEW,
        "notes": "Extended for us",
    })

    row.refresh_from_db()
    assert (row.retires_on, row.source) == (date(2027, 6, 30), ModelLifecycle.Source.ADMIN)


def test_an_admin_cannot_name_a_successor_that_is_not_on_offer(client, admin_user):
    client.force_login(admin_user)
    row = ModelLifecycle.objects.get(model=SONNET_OLD)
    retire("claude-haiku-4-5")

    for successor in ("claude-sonnet-55", "claude-haiku-4-5"):
        response = client.post(reverse("admin:lifecycle_modellifecycle_change", args=[row.pk]), {
            "model": SONNET_OLD, "deprecated_on": "2026-11-05", "retires_on": "2027-03-05",
            "successor": successor, "notes": "",
        })

        assert response.status_code == 200 and "is not a model on offer here" in response.content.decode()
    row.refresh_from_db()
    assert (row.successor, row.source) == (SONNET_NEW, ModelLifecycle.Source.BUILT_IN)


def test_admins_are_told_once_per_threshold_with_the_counts(admin_user, on_old_sonnet, settings):
    settings.LIFECYCLE_NOTICE_DAYS = 30
    ModelLifecycle.objects.filter(model=SONNET_OLD).update(retires_on=today() + timedelta(days=30))
    ModelLifecycle.objects.exclude(model=SONNET_OLD).update(retires_on=today() + timedelta(days=90))

    call_command("lifecycle_notify")
    call_command("lifecycle_notify")

    assert [message.to for message in mail.outbox] == [["admin@example.com"]]
    assert mail.outbox[0].subject.startswith("Claude Sonnet 4.6 retires in 30 days")
    assert "Conversations on it: 2" in mail.outbox[0].body
    assert "Users with it as their default model: 1" in mail.outbox[0].body

    services.retirements_notify(today=today() + timedelta(days=24))  # 6 days left: the 7-day notice
    services.retirements_notify(today=today() + timedelta(days=25))
    services.retirements_notify(today=today() + timedelta(days=29))  # the 1-day notice
    assert [message.subject.split(" (")[0] for message in mail.outbox] == [
        "Claude Sonnet 4.6 retires in 30 days", "Claude Sonnet 4.6 retires in 6 days",
        "Claude Sonnet 4.6 retires tomorrow",
    ]
    assert list(RetirementNotice.objects.order_by("days_before").values_list("days_before", flat=True)) == [1, 7, 30]


def test_a_retirement_past_several_thresholds_sends_only_the_tightest(admin_user):
    ModelLifecycle.objects.filter(model=SONNET_OLD).update(retires_on=today() + timedelta(days=3))
    ModelLifecycle.objects.exclude(model=SONNET_OLD).delete()

    sent = services.retirements_notify()

    assert [(notice.model, notice.days_before) for notice in sent] == [(SONNET_OLD, 7)]
    assert len(mail.outbox) == 1


def test_a_notice_another_run_has_written_is_not_sent_again(admin_user):
    """Two runs at once: the one that loses the race for the notice's row sends nothing."""
    retires_on = today() + timedelta(days=5)
    ModelLifecycle.objects.filter(model=SONNET_OLD).update(retires_on=retires_on)
    ModelLifecycle.objects.exclude(model=SONNET_OLD).delete()
    RetirementNotice.objects.create(
        model=SONNET_OLD, retires_on=retires_on, days_before=7, conversations=0, defaults=0, recipients=1,
    )

    assert services.retirements_notify() == []
    assert mail.outbox == []


# --- the Models API ---------------------------------------------------------------------------------------


def model_info(model_id: str, lifecycle: str, line: str, **dates) -> ModelInfo:
    return ModelInfo.construct(
        type="model", id=model_id, display_name=model_id, created_at=timezone.now(), lifecycle=lifecycle,
        line=line, **{name: datetime.fromisoformat(f"{day}T00:00:00+00:00") for name, day in dates.items()},
    )


def test_the_models_api_updates_rows_except_those_an_admin_edited():
    ModelLifecycle.objects.filter(model="claude-opus-4-6").update(
        source=ModelLifecycle.Source.ADMIN, retires_on=date(2027, 9, 1),
    )
    infos = [
        model_info("claude-opus-5-5", "active", "opus"),
        model_info("claude-sonnet-5-5", "active", "sonnet"),
        model_info("claude-opus-4-6", "deprecated", "opus", deprecated_at="2026-11-01", retires_at="2027-02-01"),
        model_info(SONNET_OLD, "deprecated", "sonnet", deprecated_at="2026-11-02", retires_at="2027-05-01"),
        model_info("claude-sonnet-4-1", "retired", "sonnet", deprecated_at="2026-01-01", retires_at="2026-06-01"),
        model_info("claude-haiku-4-5", "active", "haiku"),
    ]

    changed = services.lifecycles_from_api(infos=infos)

    rows = {row.model: row for row in ModelLifecycle.objects.all()}
    assert changed == 3
    assert (rows["claude-opus-4-6"].retires_on, rows["claude-opus-4-6"].source) == (date(2027, 9, 1), "admin")
    assert (rows[SONNET_OLD].retires_on, rows[SONNET_OLD].source) == (date(2027, 5, 1), "models_api")
    assert rows[SONNET_OLD].successor == SONNET_NEW  # the row's own successor is kept
    assert (rows["claude-sonnet-4-1"].retired(), rows["claude-sonnet-4-1"].successor) == (True, SONNET_NEW)
    assert rows["claude-haiku-4-5"].retires_on is None  # the API says active: the built-in dates go
    assert "claude-opus-5-5" not in rows
    assert services.lifecycles_from_api(infos=infos) == 0  # nothing new: nothing written


def models_api_client(*listed: tuple[str, str, str | None, str | None]) -> AsyncAnthropic:
    """The real SDK against a one-page Models API listing (id, lifecycle, deprecated_at, retires_at) Sonnets:
    the offline model lists every model as active."""
    data = [
        {"type": "model", "id": model_id, "display_name": model_id, "created_at": "2026-01-01T00:00:00Z",
         "line": "sonnet", "lifecycle": lifecycle, "deprecated_at": deprecated_at, "retires_at": retires_at}
        for model_id, lifecycle, deprecated_at, retires_at in listed
    ]
    page = {"data": data, "has_more": False, "first_id": data[0]["id"], "last_id": data[-1]["id"]}
    return AsyncAnthropic(
        api_key="sk-test", base_url="http://models-api.invalid", max_retries=0,
        http_client=httpx2.AsyncClient(transport=httpx2.MockTransport(lambda request: httpx2.Response(200, json=page))),
    )


SONNETS_LISTED = (
    (SONNET_NEW, "active", None, None),
    (SONNET_OLD, "deprecated", "2026-11-02T00:00:00Z", "2027-05-01T00:00:00Z"),
    ("claude-sonnet-4-1", "retired", "2026-01-01T00:00:00Z", "2026-06-01T00:00:00Z"),
)


async def test_the_registry_offers_deprecated_models_from_the_api_and_leaves_out_retired_ones():
    client = models_api_client(*SONNETS_LISTED)
    try:
        specs = await registry.models_fetch(client)
    finally:
        await client.close()

    assert [spec.id for spec in specs] == [SONNET_NEW, SONNET_OLD]


@pytest.mark.django_db(transaction=True)
async def test_a_refresh_of_the_models_list_writes_the_apis_dates_but_not_over_an_admins(settings, monkeypatch):
    settings.ANTHROPIC_API_KEY = "sk-test"
    monkeypatch.setattr(registry, "anthropic_client", lambda: models_api_client(*SONNETS_LISTED))
    await database_sync_to_async(ModelLifecycle.objects.update_or_create)(
        model=SONNET_OLD, defaults={"retires_on": date(2027, 8, 1), "source": ModelLifecycle.Source.ADMIN},
    )

    await registry.models_refresh()

    rows = await database_sync_to_async(lambda: {row.model: row for row in ModelLifecycle.objects.all()})()
    assert (rows[SONNET_OLD].retires_on, rows[SONNET_OLD].source) == (date(2027, 8, 1), "admin")
    assert (rows["claude-sonnet-4-1"].retires_on, rows["claude-sonnet-4-1"].source) == (date(2026, 6, 1), "models_api")
    assert [spec.id for spec in registry.models_offered()] == [SONNET_NEW, SONNET_OLD]


@pytest.mark.django_db(transaction=True)
async def test_a_refresh_whose_lifecycle_write_fails_still_offers_the_apis_list(settings, monkeypatch):
    settings.ANTHROPIC_API_KEY = "sk-test"
    monkeypatch.setattr(registry, "anthropic_client", lambda: models_api_client(*SONNETS_LISTED))

    def database_down(**kwargs):
        raise OperationalError("database is locked")

    monkeypatch.setattr(services, "lifecycles_from_api", database_down)

    await registry.models_refresh()

    assert [spec.id for spec in registry.models_offered()] == [SONNET_NEW, SONNET_OLD]
