"""Citations end to end: documents are sent with citations on, the offline model cites them through the real SDK
(`citations_delta`), the reply keeps them on its text blocks through the stream, the checkpoint and the final
save, each points at the attachment it cites, and the source views, exports and later requests read them.

Also thinking per model: the Settings dialog's choices from the registry, and the user's default for new chats.
"""

import json
import re

import pytest
from attachment_samples import pdf_bytes
from channels.db import database_sync_to_async
from django.test import Client
from django.urls import reverse
from document_samples import uploaded
from test_consumer import assistant_id, connected, frames_until_final, reload

from chat import citations, services
from chat.llm.catalog import MODELS_BY_ID
from chat.llm.offline import offline_model
from chat.llm.request import request_build, thinking_choices
from chat.models import Attachment, Conversation, Message, ThinkingLevel

pytestmark = pytest.mark.django_db(transaction=True)

NOTES = "The launch moves to May. Marketing owns the press kit.\nThe budget stays at forty thousand dollars.\n"
PAGES = ["Quarterly report. Revenue grew by nine percent.", "Appendix. Costs fell in the spring."]


@pytest.fixture(autouse=True)
def media_root(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path
    return tmp_path


@database_sync_to_async
def upload(owner, name: str, data: bytes) -> Attachment:
    [attachment] = uploaded(owner, name, data)
    return attachment


def logged_in(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def cited_blocks(reply: Message) -> list[dict]:
    return [block for block in reply.content if block.get("type") == "text" and block.get("citations")]


async def cited_reply(socket_for, owner, conversation, *names_and_bytes) -> tuple[Message, list[dict]]:
    attachments = [await upload(owner, name, data) for name, data in names_and_bytes]
    socket = await connected(socket_for, owner, conversation)
    await socket.send_json_to(
        {"type": "send", "text": "What do these say?", "attachments": [a.pk for a in attachments]}
    )
    frames = await frames_until_final(socket)
    await socket.disconnect()
    return await reload(assistant_id(frames)), frames


# --- the request ------------------------------------------------------------------------------------------


@pytest.mark.usefixtures("generations_drained")
async def test_every_document_is_sent_with_citations_on_and_images_without(socket_for, owner, conversation):
    from attachment_samples import image_bytes

    await cited_reply(
        socket_for, owner, conversation,
        ("notes.txt", NOTES.encode()), ("report.pdf", pdf_bytes(PAGES)), ("photo.png", image_bytes()),
    )

    [request] = offline_model.received
    blocks = request["messages"][0]["content"]
    documents = [block for block in blocks if block["type"] == "document"]
    assert [block["citations"] for block in documents] == [{"enabled": True}, {"enabled": True}]
    assert [block["title"] for block in documents] == ["notes.txt", "report.pdf"]
    assert "citations" not in next(block for block in blocks if block["type"] == "image")


# --- the reply keeps them ---------------------------------------------------------------------------------


@pytest.mark.usefixtures("generations_drained")
async def test_a_reply_keeps_each_citation_on_its_text_block_with_the_attachment_it_cites(
    socket_for, owner, conversation
):
    reply, frames = await cited_reply(
        socket_for, owner, conversation, ("notes.txt", NOTES.encode()), ("report.pdf", pdf_bytes(PAGES))
    )
    notes, report = await database_sync_to_async(lambda: list(Attachment.objects.order_by("id")))()

    assert reply.status == Message.Status.COMPLETE
    cited = [citation for block in cited_blocks(reply) for citation in block["citations"]]
    assert {citation["type"] for citation in cited} == {"char_location", "page_location"}
    for citation in cited:
        expected = notes if citation["type"] == "char_location" else report
        assert citation["attachment"] == expected.pk
        assert citation["document_title"] == expected.name
    char = next(citation for citation in cited if citation["type"] == "char_location")
    assert NOTES[char["start_char_index"]:char["end_char_index"]] == char["cited_text"]
    page = next(citation for citation in cited if citation["type"] == "page_location")
    assert page["cited_text"] in PAGES[page["start_page_number"] - 1]
    # The live stream carried the same citations, beside the text of the block they belong to.
    streamed = [
        (part["block"], citation)
        for frame in frames if frame["type"] == "delta"
        for part in frame["parts"] for citation in part.get("citations", [])
    ]
    assert [citation for _, citation in streamed] == cited
    assert all(reply.content[index]["type"] == "text" for index, _ in streamed)


@pytest.mark.usefixtures("generations_drained")
async def test_a_later_request_sends_the_replys_text_without_its_citations(socket_for, owner, conversation):
    reply, _ = await cited_reply(socket_for, owner, conversation, ("notes.txt", NOTES.encode()))
    assert cited_blocks(reply)
    socket = await connected(socket_for, owner, conversation)
    await socket.send_json_to({"type": "send", "text": "And the budget?"})
    follow_up = await reload(assistant_id(await frames_until_final(socket)))
    await socket.disconnect()

    assert follow_up.status == Message.Status.COMPLETE
    history = offline_model.received[-1]["messages"][1]
    assert history["role"] == "assistant"
    assert any(block["type"] == "text" for block in history["content"])
    assert all("citations" not in block for block in history["content"])


def test_the_cited_documents_are_counted_after_the_projects_files_and_what_the_context_left_out():
    from chat.llm.request import Exchange, RequestParts
    from projects.prompts import ProjectPrefix

    def document():
        return {"type": "document", "source": {"type": "text", "media_type": "text/plain", "data": "x"}}

    parts = RequestParts(
        system="", thinking="off", tools=[], project=ProjectPrefix(blocks=(document(),), documents=(7,)),
        exchanges=[Exchange([], 1, 1, documents=(11, 12)), Exchange([], 1, 1, documents=(13,))],
    )
    # The first exchange was left out: the request holds the project's file and the second exchange's document.
    request = {"messages": [{"role": "user", "content": [document(), document(), {"type": "text", "text": "?"}]}]}
    assert citations.documents_sent(parts, request) == [7, 13]


# --- the source views ---------------------------------------------------------------------------------------


def test_a_pdf_opens_inline_in_the_browsers_viewer_for_its_owner_only(owner, outsider):
    [pdf] = uploaded(owner, "report.pdf", pdf_bytes(PAGES))
    url = reverse("attachment_pdf_view", args=[pdf.pk])

    response = logged_in(owner).get(url)
    assert response.status_code == 200
    assert response["Content-Type"] == "application/pdf"
    assert response["Content-Disposition"].startswith("inline")
    assert "sandbox" not in response["Content-Security-Policy"]  # the browser's PDF viewer refuses a sandbox
    assert "default-src 'none'" in response["Content-Security-Policy"]
    assert response["X-Content-Type-Options"] == "nosniff"
    assert b"".join(response.streaming_content).startswith(b"%PDF")
    assert logged_in(outsider).get(url).status_code == 404
    # The plain file URL still downloads it.
    assert logged_in(owner).get(reverse("attachment_file", args=[pdf.pk]))["Content-Disposition"].startswith(
        "attachment"
    )


def test_a_project_files_citations_open_for_its_members_and_nobody_else(owner, outsider, django_user_model):
    """A project's files are its owner's uploads, cited in every member's conversations: a member opens the PDF at
    its page and the passage; someone outside the project still gets 404, and so does a removed member."""
    from projects import services as project_services
    from projects.models import ProjectMember

    member = django_user_model.objects.create_user(username="member", password="x" * 12)
    [pdf] = uploaded(owner, "report.pdf", pdf_bytes(PAGES))
    [notes] = uploaded(owner, "notes.txt", NOTES.encode())
    project = project_services.project_create(owner=owner, name="Reports")
    project_services.project_member_set(project=project, user=member, access=ProjectMember.Access.READ)
    project_services.project_files_add(project=project, attachment_ids=[pdf.pk, notes.pk], user=owner)
    pdf_url = reverse("attachment_pdf_view", args=[pdf.pk])
    passage_url = reverse("attachment_passage", args=[notes.pk]) + "?start=0&end=8"

    response = logged_in(member).get(pdf_url)
    assert response.status_code == 200 and b"".join(response.streaming_content).startswith(b"%PDF")
    assert response["Cache-Control"] == "private, no-store"
    assert '<mark id="passage" class="passage-mark" tabindex="-1">The laun</mark>' in (
        logged_in(member).get(passage_url).content.decode()
    )
    assert logged_in(outsider).get(pdf_url).status_code == 404
    assert logged_in(outsider).get(passage_url).status_code == 404
    ProjectMember.objects.filter(project=project, user=member).delete()
    assert logged_in(member).get(pdf_url).status_code == 404


def test_only_pdfs_open_in_the_viewer(owner):
    [notes] = uploaded(owner, "notes.txt", NOTES.encode())
    assert logged_in(owner).get(reverse("attachment_pdf_view", args=[notes.pk])).status_code == 404


def test_a_text_citation_shows_the_passage_highlighted_and_escaped(owner, outsider):
    text = "Intro <b>bold</b> line.\nThe cited part is here.\nThe end."
    [notes] = uploaded(owner, "notes.txt", text.encode())
    start = text.index("The cited")
    end = start + len("The cited part is here.")
    url = reverse("attachment_passage", args=[notes.pk]) + f"?start={start}&end={end}"

    response = logged_in(owner).get(url)
    assert response.status_code == 200
    page = response.content.decode()
    assert '<mark id="passage" class="passage-mark" tabindex="-1">The cited part is here.</mark>' in page
    assert "&lt;b&gt;bold&lt;/b&gt;" in page and "<b>bold</b>" not in page
    assert response["Cache-Control"] == "private, no-store"
    assert logged_in(outsider).get(url).status_code == 404


def test_a_passage_outside_the_text_is_clamped_and_a_malformed_one_refused(owner):
    [notes] = uploaded(owner, "notes.txt", b"Short text.")
    client = logged_in(owner)
    url = reverse("attachment_passage", args=[notes.pk])

    clamped = client.get(url + "?start=-5&end=999999").content.decode()
    assert '<mark id="passage" class="passage-mark" tabindex="-1">Short text.</mark>' in clamped
    assert client.get(url + "?start=one&end=2").status_code == 400
    [pdf] = uploaded(owner, "report.pdf", pdf_bytes(PAGES))
    assert client.get(reverse("attachment_passage", args=[pdf.pk])).status_code == 404


# --- exports --------------------------------------------------------------------------------------------------


def _cited_conversation(owner, attachment) -> tuple[Conversation, Message]:
    conversation = services.conversation_create(owner=owner)
    user = Message.objects.create(conversation=conversation, role=Message.Role.USER, content=[
        {"type": "attachment", "attachment_id": attachment.pk}, {"type": "text", "text": "Summarise"},
    ])
    page = {
        "type": "page_location", "cited_text": "Revenue grew by nine percent.", "document_index": 0,
        "document_title": "report.pdf", "start_page_number": 1, "end_page_number": 2, "attachment": attachment.pk,
    }
    reply = Message.objects.create(
        conversation=conversation, role=Message.Role.ASSISTANT, parent=user, status=Message.Status.COMPLETE,
        content=[
            {"type": "text", "text": "The report says "},
            {"type": "text", "text": "revenue grew", "citations": [page]},
            {"type": "text", "text": "."},
        ],
    )
    Attachment.objects.filter(pk=attachment.pk).update(message=user)
    conversation.current_leaf = reply
    conversation.save(update_fields=["current_leaf"])
    return conversation, reply


def test_the_markdown_export_keeps_the_cited_sentence_whole_with_a_footnote(owner):
    [pdf] = uploaded(owner, "report.pdf", pdf_bytes(PAGES))
    conversation, reply = _cited_conversation(owner, pdf)

    response = logged_in(owner).get(reverse("conversation_export_markdown", args=[conversation.pk]))
    text = b"".join(response.streaming_content).decode()
    assert f"The report says revenue grew[^{reply.pk}-1].\n" in text
    assert f"[^{reply.pk}-1]: “Revenue grew by nine percent.” (report.pdf, page 1)" in text


def test_the_json_export_keeps_the_citations_as_stored(owner):
    [pdf] = uploaded(owner, "report.pdf", pdf_bytes(PAGES))
    conversation, reply = _cited_conversation(owner, pdf)

    response = logged_in(owner).get(reverse("conversation_export_json", args=[conversation.pk]))
    exported = json.loads(b"".join(response.streaming_content))
    [record] = [message for message in exported["messages"] if message["id"] == reply.pk]
    assert record["content"] == reply.content


def test_a_footnote_names_a_page_range_and_a_web_page():
    pages = {"type": "page_location", "cited_text": "x", "document_index": 0, "document_title": "a.pdf",
             "start_page_number": 2, "end_page_number": 4}
    web = {"type": "web_search_result_location", "cited_text": "y", "url": "https://example.com/a",
           "title": "Example [fake]", "encrypted_index": "e"}
    assert citations.citation_source(pages) == "a.pdf, pages 2–3"
    assert citations.citation_source(web) == "[Example [fake\\]](https://example.com/a)"


def test_an_exported_web_citation_links_only_to_a_web_page_and_cannot_break_out_of_its_link():
    """The URL is the model's: a javascript: one is not linked; a ")" in a web one cannot end the link early."""
    web = {"type": "web_search_result_location", "cited_text": "y", "title": "Page", "encrypted_index": "e"}
    assert citations.citation_source({**web, "url": "javascript:alert(1)"}) == "Page"
    assert citations.citation_source({**web, "url": "https://example.com/a b"}) == "Page"
    assert citations.citation_source({**web, "url": "https://example.com/a)<b>(x"}) == (
        "[Page](https://example.com/a%29%3Cb%3E%28x)"
    )


# --- thinking per model ------------------------------------------------------------------------------------


def test_each_model_offers_the_thinking_it_takes():
    adaptive = thinking_choices(MODELS_BY_ID["claude-opus-4-6"])
    budget = thinking_choices(MODELS_BY_ID["claude-haiku-4-5"])
    assert adaptive == [
        ("off", "Off"), ("low", "Low effort"), ("medium", "Medium effort"), ("high", "High effort"),
        ("max", "Max effort"),  # Opus 4.6 takes effort max (tests/test_thinking_max.py)
    ]
    assert budget[1:] == [
        ("low", "Low (2,048-token budget)"), ("medium", "Medium (8,192-token budget)"),
        ("high", "High (16,384-token budget)"),
    ]
    from dataclasses import replace

    assert thinking_choices(replace(MODELS_BY_ID["claude-haiku-4-5"], thinking="")) == [
        ("off", "Off: this model does not think")
    ]


def test_the_picker_carries_each_models_thinking_choices(owner):
    page = logged_in(owner).get("/").content.decode()
    option = json.dumps(thinking_choices(MODELS_BY_ID["claude-haiku-4-5"])).replace('"', "&quot;")
    [tag] = re.findall(r'<option value="claude-haiku-4-5"[^>]*>', page)
    assert f'data-thinking="{option}"' in tag


def test_the_users_default_thinking_is_saved_and_starts_new_conversations(owner):
    client = logged_in(owner)
    form = {"default_model": "", "default_thinking": "medium", "system_prompt": "", "time_zone": "UTC",
            "theme": "", "monthly_cap": ""}
    response = client.post(reverse("user_settings"), form)
    assert response.status_code == 302
    owner.refresh_from_db()
    assert owner.default_thinking == ThinkingLevel.MEDIUM
    assert services.conversation_new(owner=owner).thinking == ThinkingLevel.MEDIUM
    conversation = services.conversation_create(owner=owner)
    assert Conversation.objects.get(pk=conversation.pk).thinking == ThinkingLevel.MEDIUM
    assert request_build(conversation, reply=Message(conversation=conversation, model=conversation.model))


def test_a_default_thinking_that_is_no_level_is_refused(owner):
    response = logged_in(owner).post(reverse("user_settings"), {"default_thinking": "xhigh", "time_zone": "UTC"})
    assert response.status_code == 200
    owner.refresh_from_db()
    assert owner.default_thinking == ThinkingLevel.OFF


# --- forks ---------------------------------------------------------------------------------------------------


def test_a_fork_cites_its_own_copies_of_the_attachments(owner):
    [pdf] = uploaded(owner, "report.pdf", pdf_bytes(PAGES))
    conversation, reply = _cited_conversation(owner, pdf)

    response = logged_in(owner).post(reverse("conversation_fork", args=[conversation.pk]), {"message": reply.pk})
    fork = Conversation.objects.exclude(pk=conversation.pk).get()
    assert response.url == reverse("conversation_detail", args=[fork.pk])
    copy = Attachment.objects.exclude(pk=pdf.pk).get()
    [cited] = cited_blocks(fork.current_leaf)
    assert cited["citations"][0]["attachment"] == copy.pk
    assert cited["citations"][0]["cited_text"] == "Revenue grew by nine percent."
    assert logged_in(owner).get(reverse("attachment_pdf_view", args=[copy.pk])).status_code == 200
    [original] = cited_blocks(Message.objects.get(pk=reply.pk))
    assert original["citations"][0]["attachment"] == pdf.pk


def test_a_reload_shows_the_citations_in_the_pages_tree_data(owner):
    [pdf] = uploaded(owner, "report.pdf", pdf_bytes(PAGES))
    conversation, reply = _cited_conversation(owner, pdf)

    page = logged_in(owner).get(reverse("conversation_detail", args=[conversation.pk])).content.decode()
    tree_data = re.search(r'<script id="tree-data" type="application/json">(.*?)</script>', page, re.DOTALL)[1]
    data = json.loads(tree_data)
    [shown] = [message for message in data["messages"] if message["id"] == reply.pk]
    assert shown["content"] == reply.content


# --- a socket that joins mid-reply ----------------------------------------------------------------------------


@pytest.mark.usefixtures("generations_drained")
async def test_a_socket_joining_mid_reply_ends_with_each_citation_exactly_once(
    socket_for, owner, conversation, settings
):
    """The live snapshot holds the citations its seq covers, and the deltas after it the rest: replayed as the
    page does (frames.js `applyParts`), they give the stored citations, none twice."""
    settings.OFFLINE_MODEL_TOKENS_PER_SECOND = 300
    notes = await upload(owner, "notes.txt", NOTES.encode())
    report = await upload(owner, "report.pdf", pdf_bytes(PAGES))
    first = await connected(socket_for, owner, conversation)
    await first.send_json_to({"type": "send", "text": "What do these say?", "attachments": [notes.pk, report.pk]})
    while True:
        frame = await first.receive_json_from(timeout=5)
        if frame["type"] == "delta" and any(part.get("citations") for part in frame["parts"]):
            break

    late = await connected(socket_for, owner, conversation)
    frames = await frames_until_final(late)
    await first.disconnect()
    await late.disconnect()

    snapshots = [frame for frame in frames if frame["type"] == "message"]
    live = snapshots[-2]["message"]  # the live snapshot; the last frame is the final state
    content = [dict(block) for block in live["content"]]
    for frame in frames:
        if frame["type"] == "delta" and frame["seq"] > live["seq"]:
            for part in frame["parts"]:
                while len(content) <= part["block"]:
                    content.append({"type": part["type"]})
                block = content[part["block"]]
                block["citations"] = [*block.get("citations", []), *part.get("citations", [])]
    reply = await reload(live["id"])
    stored = [block.get("citations", []) for block in reply.content if block["type"] == "text"]
    replayed = [block.get("citations", []) for block in content if block["type"] == "text"]
    assert any(stored) and replayed == stored


def test_a_half_price_reply_cites_its_documents_by_attachment_too(settings, tmp_path, owner, conversation):
    """A Message Batch reply comes whole, not streamed: settling it resolves its citations' attachments as the
    stream does, so its markers link to the document (batches/services.py)."""
    from django.core.management import call_command
    from test_admission import admit, signed_in

    settings.OFFLINE_MODEL_BATCH_DIR = str(tmp_path / "offline-batches")
    settings.OFFLINE_MODEL_BATCH_SECONDS = 0
    [notes] = uploaded(owner, "notes.txt", NOTES.encode())
    reply_id = admit(owner, conversation, signed_in(owner), text="What do these say?", batch=True,
                     attachment_ids=[notes.pk]).reply.pk
    call_command("batches_work", "--once")  # submits
    call_command("batches_work", "--once")  # settles

    reply = Message.objects.get(pk=reply_id)
    assert reply.status == "complete"
    cited = [citation for block in cited_blocks(reply) for citation in block["citations"]]
    assert cited and all(citation["attachment"] == notes.pk for citation in cited)
