"""The sidebar: conversations grouped by date in the user's time zone, pinned first, archived ones on their own
page; pin, archive and rename over plain POSTs, each only for the owner."""

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from django.urls import reverse

from chat import selectors, services
from chat.models import Conversation, TitleSource

pytestmark = pytest.mark.django_db

AUCKLAND = ZoneInfo("Pacific/Auckland")


def conversation_at(owner, title: str, updated_at: datetime, **fields) -> Conversation:
    conversation = services.conversation_create(owner=owner)
    # An UPDATE: `auto_now` would set updated_at to now on save().
    Conversation.objects.filter(pk=conversation.pk).update(title=title, updated_at=updated_at, **fields)
    return conversation


def labelled(groups) -> list[tuple[str, list[str]]]:
    return [(group.label, [conversation.title for conversation in group.conversations]) for group in groups]


def test_conversations_are_grouped_by_calendar_day_in_the_users_time_zone(owner):
    now = datetime(2026, 12, 1, 10, 0, tzinfo=AUCKLAND)  # 30 November, 21:00 UTC
    for title, moment in [
        ("this morning", datetime(2026, 12, 1, 0, 30, tzinfo=AUCKLAND)),  # still 30 November in UTC
        ("last night", datetime(2026, 11, 30, 23, 0, tzinfo=AUCKLAND)),
        ("five days ago", now - timedelta(days=5)),
        ("three weeks ago", now - timedelta(days=21)),
        ("in October", datetime(2026, 10, 2, 12, 0, tzinfo=AUCKLAND)),
        ("last spring", datetime(2026, 4, 15, 12, 0, tzinfo=AUCKLAND)),
        ("also last spring", datetime(2026, 4, 1, 12, 0, tzinfo=AUCKLAND)),
    ]:
        conversation_at(owner, title, moment)

    groups = selectors.sidebar_groups(list(selectors.conversations_for_user(owner)), time_zone="Pacific/Auckland",
                                      now=now)

    assert labelled(groups) == [
        ("Today", ["this morning"]),
        ("Yesterday", ["last night"]),
        ("Previous 7 days", ["five days ago"]),
        ("Previous 30 days", ["three weeks ago"]),
        ("October 2026", ["in October"]),
        ("April 2026", ["last spring", "also last spring"]),
    ]


def test_in_utc_the_same_conversations_fall_on_other_days(owner):
    now = datetime(2026, 12, 1, 10, 0, tzinfo=AUCKLAND)
    conversation_at(owner, "this morning", datetime(2026, 12, 1, 0, 30, tzinfo=AUCKLAND))

    groups = selectors.sidebar_groups(list(selectors.conversations_for_user(owner)), time_zone="UTC", now=now)

    assert labelled(groups) == [("Today", ["this morning"])]
    groups = selectors.sidebar_groups(
        list(selectors.conversations_for_user(owner)), time_zone="UTC", now=now + timedelta(hours=4)
    )
    assert labelled(groups) == [("Yesterday", ["this morning"])]


def test_an_unknown_time_zone_is_read_as_utc(owner):
    conversation_at(owner, "now", datetime(2026, 12, 1, 12, 0, tzinfo=ZoneInfo("UTC")))

    groups = selectors.sidebar_groups(list(selectors.conversations_for_user(owner)), time_zone="Mars/Olympus",
                                      now=datetime(2026, 12, 1, 13, 0, tzinfo=ZoneInfo("UTC")))

    assert labelled(groups) == [("Today", ["now"])]


def test_pinned_conversations_head_the_sidebar_newest_pin_first(client, owner):
    old = conversation_at(owner, "old but pinned", datetime(2025, 1, 1, tzinfo=AUCKLAND))
    recent = conversation_at(owner, "recent", datetime.now(AUCKLAND))
    client.force_login(owner)

    client.post(reverse("conversation_pin", args=[recent.pk]), {"pinned": "1"})
    response = client.post(reverse("conversation_pin", args=[old.pk]), {"pinned": "1"})

    assert response.status_code == 302
    page = client.get(reverse("conversation_detail", args=[recent.pk]))
    assert labelled(page.context["conversation_groups"]) == [("Pinned", ["old but pinned", "recent"])]
    html = page.content.decode()
    assert html.index(">Pinned<") < html.index('data-title="old but pinned"') < html.index('data-title="recent"')
    assert 'aria-label="Unpin “recent”"' in html


def test_pinning_keeps_the_conversations_last_activity(client, owner):
    moment = datetime(2026, 3, 1, 12, 0, tzinfo=ZoneInfo("UTC"))
    conversation = conversation_at(owner, "March", moment)
    client.force_login(owner)

    client.post(reverse("conversation_pin", args=[conversation.pk]), {"pinned": "1"})
    client.post(reverse("conversation_pin", args=[conversation.pk]), {"pinned": "0"})

    conversation.refresh_from_db()
    assert conversation.pinned_at is None
    assert conversation.updated_at == moment


def test_an_archived_conversation_leaves_the_sidebar_for_the_archived_page_until_it_is_unarchived(client, owner):
    kept = conversation_at(owner, "kept", datetime.now(AUCKLAND))
    archived = conversation_at(owner, "put away", datetime.now(AUCKLAND), pinned_at=datetime.now(AUCKLAND))
    client.force_login(owner)

    response = client.post(reverse("conversation_archive", args=[archived.pk]), {"archived": "1"})

    assert response.status_code == 302 and response["Location"] == reverse("home")
    sidebar = client.get(reverse("conversation_detail", args=[kept.pk]))
    assert [c.title for c in sidebar.context["conversations"]] == ["kept"]
    assert "put away" not in sidebar.content.decode()
    archived.refresh_from_db()
    assert archived.archived_at is not None and archived.pinned_at is None
    page = client.get(reverse("conversation_archived_list"))
    assert [c.title for c in page.context["archived"]] == ["put away"]
    assert "Unarchive “put away”" in page.content.decode()

    response = client.post(
        reverse("conversation_archive", args=[archived.pk]),
        {"archived": "0", "next": reverse("conversation_archived_list")},
    )

    assert response["Location"] == reverse("conversation_archived_list")
    assert list(client.get(reverse("conversation_archived_list")).context["archived"]) == []
    sidebar = client.get(reverse("conversation_detail", args=[kept.pk]))
    assert sorted(c.title for c in sidebar.context["conversations"]) == ["kept", "put away"]


def test_home_is_a_new_chat_beside_the_conversations_that_are_not_archived(client, owner):
    older = conversation_at(owner, "older", datetime.now(AUCKLAND) - timedelta(days=1))
    newest = conversation_at(owner, "newest", datetime.now(AUCKLAND))
    client.force_login(owner)
    client.post(reverse("conversation_archive", args=[newest.pk]), {"archived": "1"})

    response = client.get(reverse("home"))

    assert response.status_code == 200 and response.context["conversation"] is None
    assert [c.pk for c in response.context["conversations"]] == [older.pk]


def test_pin_and_archive_refuse_a_value_that_is_not_1_or_0(client, owner, conversation):
    client.force_login(owner)

    pin = client.post(reverse("conversation_pin", args=[conversation.pk]), {"pinned": "yes"})
    archive = client.post(reverse("conversation_archive", args=[conversation.pk]), {})

    assert pin.status_code == 400 and pin.content.decode() == "`pinned` must be 1 or 0."
    assert archive.status_code == 400 and archive.content.decode() == "`archived` must be 1 or 0."
    conversation.refresh_from_db()
    assert conversation.pinned_at is None and conversation.archived_at is None


def test_a_next_address_on_another_site_is_not_followed(client, owner, conversation):
    client.force_login(owner)

    response = client.post(
        reverse("conversation_pin", args=[conversation.pk]), {"pinned": "1", "next": "https://evil.example/"}
    )

    assert response["Location"] == reverse("home")


def test_a_fetch_gets_no_content_back(client, owner, conversation):
    client.force_login(owner)

    response = client.post(
        reverse("conversation_archive", args=[conversation.pk]), {"archived": "1"}, headers={"X-Requested-With": "fetch"}
    )

    assert response.status_code == 204


@pytest.mark.parametrize("name, data", [
    ("conversation_pin", {"pinned": "1"}),
    ("conversation_archive", {"archived": "1"}),
    ("conversation_rename", {"title": "Mine now"}),
])
def test_an_outsider_gets_a_404_and_changes_nothing(client, outsider, conversation, name, data):
    client.force_login(outsider)

    response = client.post(reverse(name, args=[conversation.pk]), data)

    assert response.status_code == 404
    conversation.refresh_from_db()
    assert conversation.pinned_at is None and conversation.archived_at is None and conversation.title == ""


def test_the_archived_page_lists_only_the_users_own_and_asks_a_visitor_to_sign_in(client, owner, outsider):
    theirs = conversation_at(owner, "the owner's", datetime.now(AUCKLAND), archived_at=datetime.now(AUCKLAND))

    assert client.get(reverse("conversation_archived_list"))["Location"].startswith(reverse("login"))
    client.force_login(outsider)
    page = client.get(reverse("conversation_archived_list"))

    assert list(page.context["archived"]) == []
    assert "the owner's" not in page.content.decode()
    assert client.get(reverse("conversation_detail", args=[theirs.pk])).status_code == 404


def test_a_blank_rename_is_refused_with_a_reason_and_the_title_is_kept(client, owner, conversation):
    services.conversation_rename(conversation=conversation, title="Trip to Lisbon")
    client.force_login(owner)

    response = client.post(
        reverse("conversation_rename", args=[conversation.pk]), {"title": "  \n "}, headers={"X-Requested-With": "fetch"}
    )

    assert response.status_code == 400
    assert response.content.decode() == "A title cannot be blank. The conversation keeps its title."
    conversation.refresh_from_db()
    assert conversation.title == "Trip to Lisbon"


def test_a_rename_is_the_users_own_title_on_one_line(client, owner, conversation):
    client.force_login(owner)

    client.post(reverse("conversation_rename", args=[conversation.pk]), {"title": " Trip\n to   Lisbon "})

    conversation.refresh_from_db()
    assert conversation.title == "Trip to Lisbon"
    assert conversation.title_source == TitleSource.USER


# The chat page of an empty conversation: session, user, the conversation, its tree, one query for the whole
# sidebar, the price and the budget banner's two sums, the header's cost, the replies' cache numbers and the
# cache's expiry (chat/cache_stats.py, one query however long the path), and the Settings dialog's line on what
# is on offer: one query asking whether any MCP server is enabled and whether the memory tool's switch is on
# (connectors/selectors.py tools_on_offer; the servers themselves are read only when some are).
SIDEBAR_PAGE_QUERIES = 11


@pytest.mark.parametrize("count", [3, 30])
def test_the_sidebar_costs_the_same_queries_however_many_conversations(
    client, owner, count, django_assert_num_queries
):
    now = datetime.now(AUCKLAND)
    conversations = [conversation_at(owner, f"chat {n}", now - timedelta(days=n * 7)) for n in range(count)]
    services.conversation_pin(conversation=conversations[-1], pinned=True)
    services.conversation_archive(conversation=conversations[1], archived=True)
    client.force_login(owner)
    url = reverse("conversation_detail", args=[conversations[0].pk])
    client.get(url)  # the session and the models list are read once per client

    with django_assert_num_queries(SIDEBAR_PAGE_QUERIES):
        page = client.get(url)

    assert len(page.context["conversations"]) == count - 1
    assert page.context["conversation_groups"][0].label == "Pinned"

