"""What a conversation in a project sends the model: the project's instructions and files first, cached, so
every conversation of the project reads the prefix the first one wrote; through real websockets, the real SDK
and the offline model."""

import pytest
from channels.db import database_sync_to_async
from test_consumer import connected, frames_until_final
from test_prompt_caching import breakpoints, segments

from billing import selectors as billing_selectors
from chat import services as chat_services
from chat.attachments.services import attachments_upload
from chat.llm.catalog import MODELS_BY_ID
from chat.llm.request import Exchange, RequestParts, request_assemble
from chat.models import Attachment
from projects import services
from projects.models import ProjectMember
from projects.prompts import ProjectPrefix, project_prefix

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("generations_drained")]

# Long enough for the prefix to pass the offline model's minimum cacheable length on its own.
INSTRUCTIONS = "You review storage-engine designs for the team. Quote the notes you rely on. " * 60
NOTES = b"Page size is 8 KiB. Keys are sorted within a page; pages split at 70% full.\n" * 20
EPHEMERAL = {"type": "ephemeral"}


@pytest.fixture(autouse=True)
def media_root(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"
    return settings.MEDIA_ROOT


@pytest.fixture
def member(django_user_model):
    return django_user_model.objects.create_user(username="member", password="x" * 12)


@pytest.fixture
def project(owner, member, tmp_path):
    project = services.project_create(owner=owner, name="Storage engine")
    services.project_update(project=project, name=project.name, instructions=INSTRUCTIONS)
    services.project_member_set(project=project, user=member, access=ProjectMember.Access.READ)
    path = tmp_path / "notes.txt"
    path.write_bytes(NOTES)
    [notes] = attachments_upload(owner=owner, name="notes.txt", path=path)
    services.project_files_add(project=project, attachment_ids=[notes.pk], user=owner)
    return project


async def in_project(project, owner, *, system_prompt=""):
    def create():
        conversation = services.project_conversation_create(project=project, owner=owner)
        if system_prompt:
            chat_services.conversation_settings_update(
                conversation=conversation, system_prompt=system_prompt, thinking=conversation.thinking
            )
        return conversation

    return await database_sync_to_async(create)()


async def ask(socket, text: str) -> dict:
    await socket.send_json_to({"type": "send", "text": text})
    return (await frames_until_final(socket))[-1]["message"]


def project_end(request: dict) -> int:
    """The number of segments through the project's last file: the prefix the project's conversations share."""
    return len(request.get("tools", [])) + len(request["system"]) + 1


async def test_a_conversation_in_a_project_starts_with_its_instructions_and_files(
    socket_for, owner, project, offline_model_reset
):
    conversation = await in_project(project, owner, system_prompt="Be brief.")
    socket = await connected(socket_for, owner, conversation)

    await ask(socket, "How big is a page?")

    request = offline_model_reset.received[0]
    assert request["system"] == [
        {"type": "text", "text": INSTRUCTIONS.strip(), "cache_control": EPHEMERAL},
        {"type": "text", "text": "Be brief.", "cache_control": EPHEMERAL},
    ]
    first, question = request["messages"][0]["content"]
    assert first["type"] == "document" and first["title"] == "notes.txt"
    assert first["source"] == {"type": "text", "media_type": "text/plain", "data": NOTES.decode()}
    assert first["cache_control"] == EPHEMERAL
    assert question["text"] == "How big is a page?" and question["cache_control"] == EPHEMERAL
    assert len(breakpoints(request)) == 4


async def test_every_turn_of_the_conversation_keeps_the_prefix_first(socket_for, owner, project, offline_model_reset):
    conversation = await in_project(project, owner)
    socket = await connected(socket_for, owner, conversation)

    await ask(socket, "How big is a page?")
    second = await ask(socket, "When does it split?")

    first_request, second_request = offline_model_reset.received
    end = project_end(first_request)
    assert segments(second_request)[:end] == segments(first_request)[:end]
    assert [block["type"] for block in second_request["messages"][0]["content"]] == ["document", "text"]
    assert second["usage"]["cache_read_input_tokens"] > 1000


async def test_a_second_conversation_in_the_project_reads_the_prefix_the_first_wrote(
    socket_for, owner, member, project, offline_model_reset
):
    mine = await in_project(project, owner)
    theirs = await in_project(project, member)

    first = await ask(await connected(socket_for, owner, mine), "How big is a page?")
    second = await ask(await connected(socket_for, member, theirs), "Why split at 70%?")

    first_request, second_request = offline_model_reset.received
    end = project_end(first_request)
    assert segments(second_request)[:end] == segments(first_request)[:end]
    assert segments(second_request)[end:] != segments(first_request)[end:]
    assert first["usage"]["cache_read_input_tokens"] == 0
    assert second["usage"]["cache_read_input_tokens"] >= first["usage"]["cache_creation_input_tokens"] - 100
    assert second["usage"]["cache_read_input_tokens"] > 1000


async def test_conversations_with_different_system_prompts_still_share_the_tools_and_instructions(
    socket_for, owner, project, offline_model_reset
):
    brief = await in_project(project, owner, system_prompt="Be brief.")
    thorough = await in_project(project, owner, system_prompt="Be thorough.")

    await ask(await connected(socket_for, owner, brief), "How big is a page?")
    second = await ask(await connected(socket_for, owner, thorough), "How big is a page?")

    first_request, second_request = offline_model_reset.received
    instructions_end = len(first_request["tools"]) + 1
    assert segments(second_request)[:instructions_end] == segments(first_request)[:instructions_end]
    assert second["usage"]["cache_read_input_tokens"] > 1000


async def test_moving_a_conversation_out_of_the_project_stops_sending_the_prefix(
    socket_for, owner, project, offline_model_reset
):
    conversation = await in_project(project, owner)
    socket = await connected(socket_for, owner, conversation)
    await ask(socket, "How big is a page?")

    await database_sync_to_async(services.conversation_move)(conversation=conversation, project=None)
    await ask(socket, "And now?")

    request = offline_model_reset.received[-1]
    assert "system" not in request
    assert all(block["type"] == "text" for turn in request["messages"] for block in turn["content"])
    assert request["messages"][0]["content"][0]["text"] == "How big is a page?"


async def test_the_context_budget_leaves_out_old_exchanges_but_never_the_project_prefix(
    socket_for, owner, project, settings, offline_model_reset
):
    conversation = await in_project(project, owner)
    socket = await connected(socket_for, owner, conversation)
    await ask(socket, "Tell me about B-trees. " * 100)
    full = await ask(socket, "And B+ trees?")
    needed = full["context"]["tokens"] - full["usage"]["output_tokens"]
    settings.CHAT_MAX_CONTEXT_TOKENS = needed + settings.CHAT_MAX_OUTPUT_TOKENS - 200

    later = await ask(socket, "Which one for range scans?")

    request = offline_model_reset.received[-1]
    assert later["status"] == "complete" and later["notices"]
    assert request["system"][0]["text"] == INSTRUCTIONS.strip()
    first_turn = request["messages"][0]["content"]
    assert first_turn[0]["title"] == "notes.txt" and first_turn[1]["text"] == "And B+ trees?"


def test_a_project_with_files_a_system_prompt_and_a_pdf_in_the_conversation_stays_within_four_breakpoints():
    text_file = {"type": "document", "source": {"type": "text", "media_type": "text/plain", "data": "a"}, "title": "a"}
    pdf = {"type": "document", "source": {"type": "base64", "media_type": "application/pdf", "data": "JVBE"}}
    question = {"role": "user", "content": [pdf, {"type": "text", "text": "Read this."}]}
    parts = RequestParts(
        system="Be brief.", thinking="off", tools=[],
        exchanges=[Exchange(turns=[question], message_count=1, tokens=10)],
        project=ProjectPrefix(instructions="Review designs.", blocks=(text_file, text_file)),
    )

    request = request_assemble(parts, model=MODELS_BY_ID["claude-haiku-4-5"])

    blocks = [*request["system"], *request["messages"][0]["content"]]
    marked = [block.get("cache_control") is not None for block in blocks]
    # instructions, system prompt | file, last file, the PDF, the question: the project prefix keeps its three
    assert marked == [True, True, False, True, False, True]
    assert all("cache_control" not in block for block in parts.project.blocks)  # only the request's copies


def test_the_budget_estimate_counts_the_projects_instructions_and_files(owner, project):
    outside = chat_services.conversation_create(owner=owner)
    inside = services.project_conversation_create(project=project, owner=owner)
    file_tokens = sum(Attachment.objects.filter(project=project).values_list("tokens", flat=True))

    without = billing_selectors.request_estimate(conversation=outside, text="Hi", model=outside.model).input_tokens
    within = billing_selectors.request_estimate(conversation=inside, text="Hi", model=inside.model).input_tokens

    assert abs(within - without - project_prefix(project).tokens) <= 1  # rounding: one text, not two
    assert within - without > file_tokens > 0


async def test_a_member_removed_in_the_admin_stops_getting_the_projects_instructions_and_files(
    socket_for, owner, member, project, offline_model_reset
):
    conversation = await in_project(project, member)
    socket = await connected(socket_for, member, conversation)
    await ask(socket, "How big is a page?")
    assert offline_model_reset.received[-1]["system"][0]["text"] == INSTRUCTIONS.strip()
    estimate = database_sync_to_async(billing_selectors.request_estimate)
    before = (await estimate(conversation=conversation, text="Hi", model=conversation.model)).input_tokens

    # What the admin's inline does: the row goes, the conversation stays in the project.
    await database_sync_to_async(ProjectMember.objects.filter(project=project, user=member).delete)()
    after = (await estimate(conversation=conversation, text="Hi", model=conversation.model)).input_tokens
    await ask(socket, "And now?")

    request = offline_model_reset.received[-1]
    assert "system" not in request
    assert all(block["type"] == "text" for turn in request["messages"] for block in turn["content"])
    prefix_tokens = (await database_sync_to_async(project_prefix)(project)).tokens
    assert abs(before - after - prefix_tokens) <= 1
