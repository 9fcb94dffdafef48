"""The memory tool: its commands on our storage, the paths it refuses, whom it answers for, when it is offered,
a real turn that saves a note, and the settings page where the user reads, edits and deletes what it keeps."""

import re

import pytest
from anthropic.lib.tools import ToolError
from channels.db import database_sync_to_async
from django.urls import reverse
from test_consumer import assistant_id, connected, frames_until_final, reload

from chat.llm import tools
from chat.llm.memory_tool import MemoryTool, memory_tools_for
from chat.llm.request import request_build
from chat.models import Message, ToolSetting
from memory.models import MemoryFile
from memory.paths import memory_path

pytestmark = pytest.mark.django_db


@pytest.fixture
def memory(owner):
    return MemoryTool(owner.pk)


@pytest.fixture
def memory_on():
    ToolSetting.objects.create(name="memory", enabled=True)


def paths_of(user) -> list[str]:
    return list(MemoryFile.objects.filter(user=user).values_list("path", flat=True))


def test_create_view_and_edit_a_file_with_the_sdk_s_result_strings(memory, owner):
    created = memory.call({"command": "create", "path": "/memories/notes.md", "file_text": "- likes tea\n"})
    inserted = memory.call({"command": "insert", "path": "/memories/notes.md", "insert_line": 0,
                            "insert_text": "- is called Ada\n"})
    replaced = memory.call({"command": "str_replace", "path": "/memories/notes.md", "old_str": "tea",
                            "new_str": "green tea"})
    viewed = memory.call({"command": "view", "path": "/memories/notes.md"})

    assert created == "File created successfully at: /memories/notes.md"
    assert inserted == "The file /memories/notes.md has been edited."
    assert replaced.startswith("The memory file has been edited.") and "     2\t- likes green tea" in replaced
    assert viewed == (
        "Here's the content of /memories/notes.md with line numbers:\n"
        "     1\t- is called Ada\n     2\t- likes green tea\n     3\t"
    )
    assert MemoryFile.objects.get(user=owner).content == "- is called Ada\n- likes green tea\n"


def test_a_directory_lists_two_levels_with_sizes(memory):
    memory.call({"command": "create", "path": "/memories/notes.md", "file_text": "abc"})
    memory.call({"command": "create", "path": "/memories/work/plan.md", "file_text": "12345"})
    memory.call({"command": "create", "path": "/memories/work/deep/er/hidden.md", "file_text": "x"})

    listing = memory.call({"command": "view", "path": "/memories"})

    assert listing.splitlines() == [
        "Here're the files and directories up to 2 levels deep in /memories, excluding hidden items:",
        "9B\t/memories",
        "3B\t/memories/notes.md",
        "6B\t/memories/work/",
        "1B\t/memories/work/deep/",
        "5B\t/memories/work/plan.md",
    ]


def test_an_empty_memory_views_as_an_empty_directory(memory):
    assert memory.call({"command": "view", "path": "/memories"}).splitlines()[1:] == ["0B\t/memories"]


def test_rename_and_delete_move_files_and_whole_directories(memory, owner):
    memory.call({"command": "create", "path": "/memories/a/one.md", "file_text": "1"})
    memory.call({"command": "create", "path": "/memories/a/two.md", "file_text": "2"})

    moved = memory.call({"command": "rename", "old_path": "/memories/a", "new_path": "/memories/b"})
    assert moved == "Successfully renamed /memories/a to /memories/b"
    assert paths_of(owner) == ["/memories/b/one.md", "/memories/b/two.md"]

    assert memory.call({"command": "delete", "path": "/memories/b/one.md"}) == "Successfully deleted /memories/b/one.md"
    memory.call({"command": "delete", "path": "/memories/b"})
    assert paths_of(owner) == []


@pytest.mark.parametrize(
    ("command", "complaint"),
    [
        ({"command": "create", "path": "/memories/notes.md", "file_text": "again"}, "already exists"),
        ({"command": "view", "path": "/memories/missing.md"}, "does not exist"),
        ({"command": "str_replace", "path": "/memories/notes.md", "old_str": "nope", "new_str": "x"},
         "did not appear verbatim"),
        ({"command": "str_replace", "path": "/memories/notes.md", "old_str": "a", "new_str": "x"},
         "Multiple occurrences of old_str `a` in lines: 1, 2"),
        ({"command": "insert", "path": "/memories/notes.md", "insert_line": 9, "insert_text": "x"},
         "range [0, 2]"),
        ({"command": "delete", "path": "/memories"}, "Cannot delete the /memories directory itself"),
        ({"command": "rename", "old_path": "/memories/notes.md", "new_path": "/memories/notes.md/x"},
         "into itself"),
        ({"command": "create", "path": "/memories/notes.md/inner.md", "file_text": "x"}, "is a file"),
        ({"command": "create", "path": "/memories", "file_text": "x"}, "Cannot create a file at /memories"),
        ({"command": "format", "path": "/memories"}, "must be one of view, create"),
        ({"command": "create", "path": "/memories/x.md"}, "`file_text` is required"),
        ({"command": "insert", "path": "/memories/notes.md", "insert_line": "1", "insert_text": "x"},
         "`insert_line` is required for insert and must be a int"),
        ({"command": "view", "path": "/memories/notes.md", "view_range": "1-2"}, "`view_range` must be"),
        ("view /memories", "must be one of"),
    ],
)
def test_wrong_commands_are_refused_with_a_reason(memory, owner, command, complaint):
    memory.call({"command": "create", "path": "/memories/notes.md", "file_text": "a\na\n"})

    with pytest.raises(ToolError, match=re.escape(complaint)):
        memory.call(command)

    assert paths_of(owner) == ["/memories/notes.md"]


def test_a_move_that_would_make_a_path_too_long_moves_nothing(memory, owner):
    memory.call({"command": "create", "path": "/memories/a/" + "n" * 200 + ".md", "file_text": "x"})

    with pytest.raises(ToolError, match="longer than 255"):
        memory.call({"command": "rename", "old_path": "/memories/a", "new_path": "/memories/" + "b" * 60})

    assert paths_of(owner) == ["/memories/a/" + "n" * 200 + ".md"]


@pytest.mark.parametrize(
    "path",
    [
        "/memories/../secrets.md",
        "/memories/a/../../etc/passwd",
        "/etc/passwd",
        "memories/notes.md",
        "/memoriesX/notes.md",
        "/memories/%2e%2e/notes.md",
        "/memories/%2E%2e%2fnotes.md",
        "/memories\\..\\notes.md",
        "/memories/a\\b.md",
        "/memories/notes\x00.md",
        "/memories/./notes.md",
        "/memories//notes.md",
        "/memories/\uff0e\uff0e/notes.md",  # full-width dots, which Unicode folds into ".."
        "/memories/" + "a" * 260,
        "/memories/" + "d/" * 9 + "deep.md",
        "",
    ],
)
def test_paths_outside_the_memory_or_spelled_to_trick_it_are_refused(memory, owner, outsider, path):
    MemoryFile.objects.create(user=outsider, path="/memories/secrets.md", content="the outsider's")

    for command in (
        {"command": "create", "path": path, "file_text": "x"},
        {"command": "view", "path": path},
        {"command": "delete", "path": path},
        {"command": "rename", "old_path": path, "new_path": "/memories/stolen.md"},
    ):
        with pytest.raises(ToolError):
            memory.call(command)

    assert paths_of(owner) == []
    assert MemoryFile.objects.get(user=outsider).content == "the outsider's"


def test_paths_are_normalised_to_one_spelling():
    assert memory_path("/memories/") == "/memories"
    assert memory_path("/memories/work/") == "/memories/work"
    assert memory_path("/memories/caf\u0065\u0301.md") == "/memories/caf\u00e9.md"


def test_the_tool_never_reaches_another_users_files(memory, owner, outsider):
    MemoryFile.objects.create(user=outsider, path="/memories/notes.md", content="outsider")

    listing = memory.call({"command": "view", "path": "/memories"})
    memory.call({"command": "create", "path": "/memories/notes.md", "file_text": "mine"})
    with pytest.raises(ToolError):
        MemoryTool(owner.pk).call({"command": "delete", "path": "/memories/other.md"})
    memory.call({"command": "delete", "path": "/memories/notes.md"})

    assert "notes.md" not in listing
    assert MemoryFile.objects.get(user=outsider).content == "outsider"


def test_files_are_bounded_in_size_and_number(memory, owner, settings):
    settings.MEMORY_MAX_FILE_BYTES, settings.MEMORY_MAX_FILES = 10, 2
    memory.call({"command": "create", "path": "/memories/a.md", "file_text": "0123456789"})

    with pytest.raises(ToolError, match="at most 10 bytes"):
        memory.call({"command": "create", "path": "/memories/b.md", "file_text": "é" * 6})
    with pytest.raises(ToolError, match="at most 10 bytes"):
        memory.call({"command": "insert", "path": "/memories/a.md", "insert_line": 0, "insert_text": "more"})
    memory.call({"command": "create", "path": "/memories/b.md", "file_text": ""})
    with pytest.raises(ToolError, match="holds 2 files"):
        memory.call({"command": "create", "path": "/memories/c.md", "file_text": ""})

    assert paths_of(owner) == ["/memories/a.md", "/memories/b.md"]


async def test_refusals_reach_the_model_as_error_results(owner):
    calls = [{"type": "tool_use", "id": "m1", "name": "memory", "input": {"command": "view", "path": "/etc"}}]

    [result] = await tools.tool_results(calls, [MemoryTool(owner.pk)])

    assert result == {
        "type": "tool_result", "tool_use_id": "m1", "is_error": True,
        "content": "Path must start with /memories, got: /etc",
    }


def test_the_tool_is_offered_only_when_the_admin_and_the_user_have_it_on(owner, conversation):
    Message.objects.create(conversation=conversation, role="user", content=[{"type": "text", "text": "Hi"}])
    reply = Message.objects.create(conversation=conversation, role="assistant", status="streaming")

    def offered() -> bool:
        conversation.owner.refresh_from_db()
        return {"type": "memory_20250818", "name": "memory"} in [
            {key: value for key, value in tool.items() if key != "cache_control"}
            for tool in request_build(conversation, reply=reply).get("tools", [])
        ]

    assert not offered() and memory_tools_for(owner) == []  # no admin row: off
    setting = ToolSetting.objects.create(name="memory", enabled=True)
    assert offered()
    owner.memory_enabled = False
    owner.save(update_fields=["memory_enabled"])
    assert not offered()
    owner.memory_enabled = True
    owner.save(update_fields=["memory_enabled"])
    setting.enabled = False
    setting.save()
    assert not offered()


def test_shares_withhold_what_the_memory_returned():
    content = [
        {"type": "tool_use", "id": "m1", "name": "memory", "input": {"command": "view", "path": "/memories"}},
        {"type": "tool_result", "tool_use_id": "m1", "content": "the owner's notes"},
    ]

    assert tools.context_results_withheld(content)[1]["content"] == tools.WITHHELD


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("generations_drained")
async def test_a_real_turn_saves_what_the_user_asked_to_remember(socket_for, owner, conversation, memory_on):
    socket = await connected(socket_for, owner, conversation)

    await socket.send_json_to({"type": "send", "text": "Please remember that my dog is called Rex."})
    frames = await frames_until_final(socket)

    message = await reload(assistant_id(frames))
    calls = [block for block in message.content if block["type"] == "tool_use"]
    results = [block for block in message.content if block["type"] == "tool_result"]
    assert [call["input"]["command"] for call in calls] == ["view", "create"]
    assert all(call["name"] == "memory" for call in calls) and not any(r.get("is_error") for r in results)
    assert results[1]["content"] == "File created successfully at: /memories/notes.md"
    saved = await database_sync_to_async(lambda: list(MemoryFile.objects.filter(user=owner)))()
    assert [(file.path, file.content) for file in saved] == [("/memories/notes.md", "- my dog is called Rex\n")]
    assert message.status == "complete"


# --- the settings page ----------------------------------------------------------------------------------


@pytest.fixture
def note(owner):
    return MemoryFile.objects.create(user=owner, path="/memories/notes.md", content="- likes tea\n")


def test_the_page_lists_the_users_files_only(client, owner, outsider, note):
    MemoryFile.objects.create(user=outsider, path="/memories/outsider.md", content="x")
    client.force_login(owner)

    page = client.get(reverse("memory_list")).content.decode()

    assert "/memories/notes.md" in page and "outsider.md" not in page
    assert "An admin has not turned the memory tool on" in page
    assert reverse("memory_list") in client.get(reverse("user_settings")).content.decode()


def test_the_owner_reads_edits_and_deletes_a_file(client, owner, note):
    client.force_login(owner)

    shown = client.get(reverse("memory_file_edit", args=[note.pk])).content.decode()
    edited = client.post(reverse("memory_file_edit", args=[note.pk]), {"content": "- likes coffee\n"})
    note.refresh_from_db()
    assert "- likes tea" in shown and edited.status_code == 302 and note.content == "- likes coffee\n"

    deleted = client.post(reverse("memory_file_delete", args=[note.pk]))
    assert deleted.status_code == 302 and not MemoryFile.objects.exists()


def test_an_edit_over_the_size_limit_is_refused_on_the_page(client, owner, note, settings):
    settings.MEMORY_MAX_FILE_BYTES = 5
    client.force_login(owner)

    response = client.post(reverse("memory_file_edit", args=[note.pk]), {"content": "too long for it"})

    note.refresh_from_db()
    assert response.status_code == 200 and "at most 5 bytes" in response.content.decode()
    assert note.content == "- likes tea\n"


def test_outsiders_get_404_on_every_file_path(client, outsider, note):
    client.force_login(outsider)

    assert client.get(reverse("memory_file_edit", args=[note.pk])).status_code == 404
    assert client.post(reverse("memory_file_edit", args=[note.pk]), {"content": "mine"}).status_code == 404
    assert client.post(reverse("memory_file_delete", args=[note.pk])).status_code == 404
    note.refresh_from_db()
    assert note.content == "- likes tea\n"


def test_the_pages_need_a_sign_in_and_a_csrf_token(owner, note):
    from django.test import Client

    anonymous = Client()
    assert anonymous.get(reverse("memory_list")).status_code == 302
    checked = Client(enforce_csrf_checks=True)
    checked.force_login(owner)
    assert checked.post(reverse("memory_file_delete", args=[note.pk])).status_code == 403
    assert checked.post(reverse("memory_switch"), {}).status_code == 403
    assert MemoryFile.objects.filter(pk=note.pk).exists()


def test_the_user_switches_their_memory_off_and_on(client, owner):
    client.force_login(owner)

    client.post(reverse("memory_switch"), {})
    owner.refresh_from_db()
    assert owner.memory_enabled is False
    client.post(reverse("memory_switch"), {"memory_enabled": "on"})
    owner.refresh_from_db()
    assert owner.memory_enabled is True


def test_an_admin_turns_the_memory_tool_on(client, django_user_model):
    client.force_login(django_user_model.objects.create_superuser("admin", "admin@example.com", "x-admin-pass-1"))

    response = client.post(reverse("admin:chat_toolsetting_add"), {"name": "memory", "enabled": "on"})

    assert response.status_code == 302
    assert ToolSetting.objects.filter(name="memory", enabled=True).exists()
