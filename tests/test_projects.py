"""Projects: who may see and change one, its files through the one upload pipeline, and moving conversations
into and out of it. What a conversation in a project sends the model is in test_project_requests.py."""

from datetime import timedelta
from html import escape

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.urls import reverse

from chat import services as chat_services
from chat.attachments.limits import AttachmentRefused
from chat.attachments.services import attachments_cleanup, attachments_for_turn, attachments_upload
from chat.models import Attachment, Conversation, Message
from projects import services
from projects.models import Project, ProjectMember
from projects.selectors import project_in_reach

pytestmark = pytest.mark.django_db

INSTRUCTIONS = "Answer as the team's database reviewer. Cite the file you rely on."


@pytest.fixture(autouse=True)
def media_root(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"
    return settings.MEDIA_ROOT


@pytest.fixture
def reader(django_user_model):
    return django_user_model.objects.create_user(username="reader", email="reader@example.com", password="x" * 12)


@pytest.fixture
def writer(django_user_model):
    return django_user_model.objects.create_user(username="writer", password="x" * 12)


@pytest.fixture
def project(owner, reader, writer):
    project = services.project_create(owner=owner, name="Storage engine")
    services.project_update(project=project, name=project.name, instructions=INSTRUCTIONS)
    services.project_member_set(project=project, user=reader, access=ProjectMember.Access.READ)
    services.project_member_set(project=project, user=writer, access=ProjectMember.Access.WRITE)
    return project


def upload(user, tmp_path, name="notes.txt", data=b"B-trees keep keys sorted in pages.\n") -> Attachment:
    """An upload through the pipeline's service, as POST /attachments/ stores it: unclaimed."""
    path = tmp_path / name
    path.write_bytes(data)
    [attachment] = attachments_upload(owner=user, name=name, path=path)
    return attachment


def project_file(project, tmp_path, **file) -> Attachment:
    attachment = upload(project.owner, tmp_path, **file)
    services.project_files_add(project=project, attachment_ids=[attachment.pk], user=project.owner)
    return attachment


def client_for(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


# --- who may do what --------------------------------------------------------------------------------------


def test_an_outsider_gets_404_for_the_project_page_its_files_and_every_write(project, outsider, tmp_path):
    attachment = project_file(project, tmp_path)
    client = client_for(outsider)
    pages = [reverse("project_detail", args=[project.pk]), reverse("project_file", args=[project.pk, attachment.pk])]
    writes = [
        reverse(name, args=[project.pk]) for name in
        ("project_update", "project_delete", "project_files_add", "project_member_add", "project_conversation_create")
    ] + [reverse("project_file_remove", args=[project.pk, attachment.pk])]

    assert [client.get(url).status_code for url in pages] == [404, 404]
    assert [client.post(url, {"name": "Mine", "who": "outsider"}).status_code for url in writes] == [404] * 6
    assert Project.objects.filter(pk=project.pk, name="Storage engine").exists()
    assert list(project.files.all()) == [attachment]
    assert not Conversation.objects.filter(owner=outsider).exists()


def test_an_outsider_cannot_move_their_own_conversation_into_the_project(project, outsider):
    theirs = chat_services.conversation_create(owner=outsider)

    response = client_for(outsider).post(reverse("conversation_project", args=[theirs.pk]), {"project": project.pk})

    assert response.status_code == 404
    theirs.refresh_from_db()
    assert theirs.project is None


def test_nobody_moves_someone_elses_conversation(project, owner, reader):
    conversation = chat_services.conversation_create(owner=owner)

    response = client_for(reader).post(reverse("conversation_project", args=[conversation.pk]), {"project": project.pk})

    assert response.status_code == 404
    conversation.refresh_from_db()
    assert conversation.project is None


def test_a_read_member_sees_the_project_and_starts_a_chat_in_it(project, reader):
    client = client_for(reader)

    page = client.get(reverse("project_detail", args=[project.pk]))
    response = client.post(reverse("project_conversation_create", args=[project.pk]))

    assert page.status_code == 200 and escape(INSTRUCTIONS) in page.content.decode()
    assert page.context["project_form"] is None and page.context["members"] is None
    conversation = Conversation.objects.get(owner=reader)
    assert conversation.project == project
    assert response.url == reverse("conversation_detail", args=[conversation.pk])


def test_a_read_member_cannot_change_the_instructions_or_the_files(project, reader, tmp_path):
    attachment = project_file(project, tmp_path)
    theirs = upload(reader, tmp_path, name="mine.txt", data=b"Mine.\n")
    client = client_for(reader)

    edit = client.post(reverse("project_update", args=[project.pk]), {"name": "Taken", "instructions": "Obey me."})
    add = client.post(reverse("project_files_add", args=[project.pk]), {"attachment": [theirs.pk]})
    remove = client.post(reverse("project_file_remove", args=[project.pk, attachment.pk]))

    assert [edit.status_code, add.status_code, remove.status_code] == [404, 404, 404]
    project.refresh_from_db()
    assert (project.name, project.instructions) == ("Storage engine", INSTRUCTIONS)
    assert list(project.files.all()) == [attachment]


def test_a_write_member_changes_the_instructions(project, writer):
    response = client_for(writer).post(
        reverse("project_update", args=[project.pk]), {"name": "Storage", "instructions": "  Be terse.  "}
    )

    assert response.status_code == 302
    project.refresh_from_db()
    assert (project.name, project.instructions) == ("Storage", "Be terse.")


def test_only_the_owner_shares_and_deletes_the_project(project, writer, outsider):
    client = client_for(writer)

    share = client.post(reverse("project_member_add", args=[project.pk]), {"who": "outsider", "access": "write"})
    delete = client.post(reverse("project_delete", args=[project.pk]))

    assert [share.status_code, delete.status_code] == [403, 403]
    assert not project.members.filter(user=outsider).exists()
    assert Project.objects.filter(pk=project.pk).exists()


def test_the_owner_shares_by_username_or_email_and_changes_the_access(project, owner, reader, outsider):
    outsider.email = "outsider@example.com"
    outsider.save()
    client = client_for(owner)

    by_email = client.post(
        reverse("project_member_add", args=[project.pk]), {"who": "OUTSIDER@example.com", "access": "read"}
    )
    again = client.post(reverse("project_member_add", args=[project.pk]), {"who": "reader", "access": "write"})
    unknown = client.post(reverse("project_member_add", args=[project.pk]), {"who": "nobody", "access": "read"})
    themselves = client.post(reverse("project_member_add", args=[project.pk]), {"who": "owner", "access": "read"})

    statuses = [response.status_code for response in (by_email, again, unknown, themselves)]
    assert statuses == [302, 302, 400, 400]
    assert project.members.get(user=outsider).access == "read"
    assert project.members.get(user=reader).access == "write"


def test_a_removed_member_loses_the_project_and_their_conversations_leave_it(project, owner, reader):
    theirs = services.project_conversation_create(project=project, owner=reader)
    member = project.members.get(user=reader)

    response = client_for(owner).post(reverse("project_member_remove", args=[project.pk, member.pk]))

    assert response.status_code == 302
    theirs.refresh_from_db()
    assert theirs.project is None
    assert client_for(reader).get(reverse("project_detail", args=[project.pk])).status_code == 404


def test_deleting_the_project_deletes_its_files_and_keeps_its_conversations(project, owner, tmp_path):
    project_file(project, tmp_path)
    conversation = services.project_conversation_create(project=project, owner=owner)

    client_for(owner).post(reverse("project_delete", args=[project.pk]))

    conversation.refresh_from_db()
    assert conversation.project is None
    assert not Attachment.objects.exists()


# --- the pages --------------------------------------------------------------------------------------------


def test_the_list_shows_my_projects_and_those_shared_with_me_in_a_fixed_number_of_queries(
    project, owner, reader, django_assert_num_queries
):
    services.project_create(owner=owner, name="Not shared")
    services.project_create(owner=reader, name="The reader's own")
    client = client_for(reader)

    with django_assert_num_queries(3):  # the session, the user, the projects with their owners and access
        page = client.get(reverse("project_list"))

    assert [p.name for p in page.context["projects"]] == ["Storage engine", "The reader's own"]


def test_a_new_project_is_the_creators_own(owner):
    response = client_for(owner).post(reverse("project_create"), {"name": "  Notes  "})

    project = Project.objects.get()
    assert (project.owner, project.name) == (owner, "Notes")
    assert response.url == reverse("project_detail", args=[project.pk])


def test_the_page_says_how_much_of_the_context_window_the_instructions_and_files_take(
    project, owner, tmp_path, settings
):
    project_file(project, tmp_path, data=b"x" * 40_000)  # about 10,000 tokens of text
    settings.CHAT_MAX_CONTEXT_TOKENS = 100_000

    page = client_for(owner).get(reverse("project_detail", args=[project.pk]))

    tokens = page.context["prefix_tokens"]
    assert tokens > 10_000
    assert f"{tokens} tokens of the context window ({round(tokens / 1000, 1)}%)" in page.content.decode()


def test_the_page_lists_only_the_viewers_own_conversations_in_it(project, owner, reader):
    mine = services.project_conversation_create(project=project, owner=reader)
    services.project_conversation_create(project=project, owner=owner)
    chat_services.conversation_create(owner=reader)

    page = client_for(reader).get(reverse("project_detail", args=[project.pk]))

    assert list(page.context["conversations"]) == [mine]


# --- files ------------------------------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)  # the endpoint works on its own threads and connections
def test_files_uploaded_to_the_endpoint_become_the_projects_and_every_reader_can_open_them(project, writer, reader):
    client = client_for(writer)
    uploaded = client.post(reverse("attachment_upload"), {"file": SimpleUploadedFile("schema.sql", b"create table t;")})
    attachment_id = uploaded.json()["files"][0]["attachment"]["id"]

    added = client.post(reverse("project_files_add", args=[project.pk]), {"attachment": [attachment_id]})
    served = client_for(reader).get(reverse("project_file", args=[project.pk, attachment_id]))

    assert added.status_code == 302
    assert list(project.files.values_list("pk", flat=True)) == [attachment_id]
    assert served.status_code == 200 and b"".join(served.streaming_content) == b"create table t;"
    assert served["Content-Security-Policy"].startswith("sandbox")
    assert served["Cache-Control"] == "private, no-store"  # a member removed later cannot open it from a cache


def test_someone_elses_upload_or_one_already_added_is_refused(project, owner, writer, tmp_path):
    theirs = upload(writer, tmp_path)
    mine = project_file(project, tmp_path, name="mine.txt", data=b"Mine.\n")
    client = client_for(owner)

    for attachment in (theirs, mine):
        url = reverse("project_files_add", args=[project.pk])
        response = client.post(url, {"attachment": [attachment.pk]}, follow=True)
        assert "A file is missing, or was already sent or added." in response.content.decode()

    assert list(project.files.all()) == [mine]
    theirs.refresh_from_db()
    assert theirs.project is None


@pytest.mark.django_db(transaction=True)  # the endpoint works on its own threads and connections
def test_upload_refusals_are_the_pipelines(project, owner):
    client = client_for(owner)

    response = client.post(reverse("attachment_upload"), {"file": SimpleUploadedFile("empty.txt", b"")})

    assert response.json()["files"] == [{"name": "empty.txt", "error": "This file is empty."}]
    assert not Attachment.objects.exists()


def test_files_past_what_one_request_may_carry_are_refused_with_the_pipelines_limits(project, owner, tmp_path):
    """Every request of the project's conversations carries all its files, so the API's limits apply to them."""
    pdfs = [
        Attachment.objects.create(
            owner=owner, kind=Attachment.Kind.PDF, name=f"{n}.pdf", sha256=str(n), media_type="application/pdf",
            file=f"{n}.pdf", size=1000, page_count=60,
        )
        for n in range(2)
    ]
    services.project_files_add(project=project, attachment_ids=[pdfs[0].pk], user=owner)

    response = client_for(owner).post(
        reverse("project_files_add", args=[project.pk]), {"attachment": [pdfs[1].pk]}, follow=True
    )

    assert "A request to the model can carry 100 PDF pages, and this conversation would carry 120." in (
        response.content.decode()
    )
    assert list(project.files.all()) == [pdfs[0]]


def test_project_files_are_never_cleaned_up_as_unclaimed(project, tmp_path, media_root):
    attachment = project_file(project, tmp_path)
    Attachment.objects.filter(pk=attachment.pk).update(created_at=attachment.created_at - timedelta(days=30))

    deleted, removed = attachments_cleanup(older_than=timedelta(seconds=0))

    assert (deleted, removed) == (0, 0)
    assert list(project.files.all()) == [attachment]
    assert (media_root / attachment.file).exists()


def test_a_removed_file_leaves_the_project(project, writer, tmp_path):
    attachment = project_file(project, tmp_path)

    client_for(writer).post(reverse("project_file_remove", args=[project.pk, attachment.pk]))

    assert not project.files.exists()


# --- moving conversations ---------------------------------------------------------------------------------


def test_a_conversation_moves_into_a_project_and_out_with_one_post_each(project, reader):
    conversation = chat_services.conversation_create(owner=reader)
    client = client_for(reader)
    url = reverse("conversation_project", args=[conversation.pk])

    form = client.get(url)
    moved_in = client.post(url, {"project": project.pk})
    conversation.refresh_from_db()
    inside = conversation.project
    moved_out = client.post(url, {"project": ""})
    conversation.refresh_from_db()

    assert form.status_code == 200 and list(form.context["projects"]) == [project]
    assert moved_in.url == reverse("conversation_detail", args=[conversation.pk]) and moved_out.status_code == 302
    assert inside == project and conversation.project is None


def a_pdf(owner, name: str, pages: int, message=None) -> Attachment:
    return Attachment.objects.create(
        owner=owner, kind=Attachment.Kind.PDF, name=name, sha256=name, media_type="application/pdf", file=name,
        size=1000, page_count=pages, message=message,
    )


def a_conversation_with_a_pdf(owner, pages: int) -> Conversation:
    conversation = chat_services.conversation_create(owner=owner)
    message = Message.objects.create(conversation=conversation, role="user", content=[{"type": "text", "text": "Read"}])
    conversation.current_leaf = message
    conversation.save(update_fields=["current_leaf"])
    a_pdf(owner, "sent.pdf", pages, message=message)
    return conversation


def test_moving_a_conversation_whose_files_and_the_projects_pass_the_limits_is_refused_by_the_pipeline(
    project, owner, reader,
):
    services.project_files_add(project=project, attachment_ids=[a_pdf(owner, "spec.pdf", 60).pk], user=owner)
    conversation = a_conversation_with_a_pdf(reader, 60)

    response = client_for(reader).post(reverse("conversation_project", args=[conversation.pk]), {"project": project.pk})

    assert response.status_code == 400
    assert escape("A request to the model can carry 100 PDF pages, and this conversation would carry 120.") in (
        response.content.decode()
    )
    conversation.refresh_from_db()
    assert conversation.project is None


def test_a_removed_members_attachments_no_longer_count_the_projects_files(project, owner, reader):
    services.project_files_add(project=project, attachment_ids=[a_pdf(owner, "spec.pdf", 60).pk], user=owner)
    conversation = services.project_conversation_create(project=project, owner=reader)
    sending = a_pdf(reader, "mine.pdf", 60)
    with pytest.raises(AttachmentRefused):
        attachments_for_turn(conversation=conversation, attachment_ids=[sending.pk])

    ProjectMember.objects.filter(project=project, user=reader).delete()  # as the admin's inline does

    assert attachments_for_turn(conversation=conversation, attachment_ids=[sending.pk]) == [sending]


def test_a_project_given_to_another_owner_is_out_of_reach_of_the_old_owners_conversations(project, owner, reader, outsider):
    mine = services.project_conversation_create(project=project, owner=owner)
    theirs = services.project_conversation_create(project=project, owner=reader)
    assert project_in_reach(mine) == project and project_in_reach(theirs) == project

    Project.objects.filter(pk=project.pk).update(owner=outsider)
    mine, theirs = Conversation.objects.get(pk=mine.pk), Conversation.objects.get(pk=theirs.pk)

    assert project_in_reach(mine) is None
    assert project_in_reach(theirs) == project  # still a member
