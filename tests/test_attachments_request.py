"""Requests to the model built from stored attachments, and attachments in the transcript."""

import json

import pytest
from attachment_samples import image_bytes, pdf_bytes
from django.urls import reverse
from document_samples import uploaded

from chat.attachments import services as attachment_services
from chat.llm.offline.prompt import read_prompt
from chat.llm.request import request_build
from chat.models import Message
from transcripts import message_appended

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def media_root(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path
    return tmp_path


def turn_with(conversation, owner, text: str, uploads: list[tuple[str, bytes]]) -> Message:
    message = message_appended(conversation, role="user", content=[])
    attachments = [attachment for name, data in uploads for attachment in uploaded(owner, name, data)]
    attachment_services.attachments_claim(attachments=attachments, message=message)
    message.content = [{"type": "attachment", "attachment_id": a.pk} for a in attachments]
    message.content.append({"type": "text", "text": text})
    message.save()
    message_appended(conversation, role="assistant", text="ok")
    return message


def breakpoints(request: dict) -> list[str]:
    blocks = [*request.get("system", []), *(b for m in request["messages"] for b in m["content"])]
    return [block.get("title") or block["type"] for block in blocks if "cache_control" in block]


def test_documents_get_breakpoints_newest_first_within_the_apis_four(conversation, owner):
    conversation.system_prompt = "Be brief."
    conversation.save()
    for number in range(1, 5):
        turn_with(conversation, owner, f"Question {number}", [(f"doc{number}.pdf", pdf_bytes([f"Doc {number}"]))])
    turn_with(conversation, owner, "Which is longest?", [])
    reply = message_appended(conversation, role="assistant", status="streaming")

    request = request_build(conversation, reply=reply)

    assert breakpoints(request) == ["text", "doc3.pdf", "doc4.pdf", "text"]
    read_prompt({**request, "stream": True})  # the offline model, like the API, accepts it


def test_a_document_in_the_latest_turn_keeps_a_single_breakpoint(conversation, owner):
    turn_with(conversation, owner, "", [("only.pdf", pdf_bytes(["Only"]))])
    reply = message_appended(conversation, role="assistant", status="streaming")

    request = request_build(conversation, reply=reply)

    assert breakpoints(request) == ["only.pdf"]
    document = request["messages"][0]["content"][0]
    assert document["source"]["media_type"] == "application/pdf" and document["type"] == "document"


def test_a_text_document_is_sent_as_its_text_titled_with_the_file_name(conversation, owner):
    turn_with(conversation, owner, "Review", [("main.py", "print('héllo')\n".encode())])
    reply = message_appended(conversation, role="assistant", status="streaming")

    request = request_build(conversation, reply=reply)

    document = request["messages"][0]["content"][0]
    assert {key: value for key, value in document.items() if key != "cache_control"} == {
        "type": "document",
        "source": {"type": "text", "media_type": "text/plain", "data": "print('héllo')\n"},
        "title": "main.py",
        "citations": {"enabled": True},  # chat/citations.py
    }
    read_prompt({**request, "stream": True})  # the offline model, like the API, accepts it


def test_an_attachment_whose_file_is_gone_becomes_a_note_not_a_failed_reply(conversation, owner, media_root):
    turn_with(conversation, owner, "See this", [("gone.png", image_bytes())])
    for path in media_root.rglob("*.png"):
        path.unlink()
    reply = message_appended(conversation, role="assistant", status="streaming")

    request = request_build(conversation, reply=reply)

    assert request["messages"][0]["content"][0] == {
        "type": "text", "text": "(The attachment 'gone.png' is no longer available.)"
    }


# --- the transcript -------------------------------------------------------------------------------------


def test_the_chat_page_lists_attachments_escaped_without_a_query_per_message(
    client, owner, conversation, django_assert_num_queries
):
    for number in range(5):
        turn_with(conversation, owner, f"Q{number}", [("<img src=x onerror=alert(1)>.png", image_bytes())])
    client.force_login(owner)

    # Session, user, the conversation, its tree, the path's messages, their attachments (one query for all
    # five), the replies' cache numbers, the sidebar, the price, the Settings dialog's line on what is on offer
    # (connectors/selectors.py tools_on_offer), the budget banner's two sums and the header's cost.
    with django_assert_num_queries(13):
        response = client.get(reverse("conversation_detail", args=[conversation.pk]))

    body = response.content.decode()
    assert "<img src=x" not in body
    data = json.loads(body.split('id="tree-data" type="application/json">')[1].split("</script>")[0])
    assert [a["name"] for m in data["messages"] if m["role"] == "user" for a in m["attachments"]] == [
        "<img src=x onerror=alert(1)>.png"
    ] * 5
