"""The memory tool (`memory_20250818`): Claude keeps notes for one user across conversations, in our database.

The API's memory tool is client-side: the request offers `{"type": "memory_20250818", "name": "memory"}`, the
model calls it like any tool (view, create, str_replace, insert, delete, rename on `/memories/...` paths), and
the reply's tool loop (chat/replies/generation.py) runs the call here and sends back the result. The SDK's
`BetaAbstractMemoryTool` gives the definition and the dispatch by command; `MemoryTool` is its database
store, one per reply, answering for the reply's user only (memory/: every read and write is keyed by that
user). The result strings are the SDK's own file store's (`BetaLocalFilesystemMemoryTool`), which are those the
model is trained on.

Offered when an admin switched it on (a ToolSetting row "memory", enabled: off without one, unlike the other
tools) and the user keeps `memory_enabled` on (their settings). A refused path or write is a ToolError, an
`is_error` result the model reads; nothing raised here is a server error.
"""

from anthropic.lib.tools import BetaAbstractMemoryTool, ToolError

from chat.models import ToolSetting
from memory import selectors, services
from memory.paths import ROOT, MemoryRefused, memory_path

NAME = "memory"
LINE_NUMBER_WIDTH = 6
# Directories are listed to this depth below the path viewed, as the SDK's file store does.
VIEW_DEPTH = 2
# What each command needs besides `command`, and of which type: checked before the SDK builds its command
# object, which does not validate.
COMMAND_FIELDS = {
    "view": {"path": str},
    "create": {"path": str, "file_text": str},
    "str_replace": {"path": str, "old_str": str, "new_str": str},
    "insert": {"path": str, "insert_line": int, "insert_text": str},
    "delete": {"path": str},
    "rename": {"old_path": str, "new_path": str},
}


def memory_switched_on():
    """The admin's switch: the "memory" row, enabled. A queryset, so that a page can read it as a subquery of a
    query it makes anyway (connectors/selectors.py tools_on_offer)."""
    return ToolSetting.objects.filter(name=NAME, enabled=True)


def memory_tools_for(user) -> list["MemoryTool"]:
    """[the memory tool of `user`] when both the admin and the user have it on, else []. Read per reply."""
    if not user.memory_enabled or not memory_switched_on().exists():
        return []
    return [MemoryTool(user.pk)]


class MemoryTool(BetaAbstractMemoryTool):
    """The memory of user `user_id`. Calls run in a worker thread with a database connection (tools.py)."""

    def __init__(self, user_id: int):
        super().__init__()
        self.user_id = user_id

    def call(self, input: object):
        _check_input(input)
        try:
            return super().call(input)
        except MemoryRefused as refusal:
            raise ToolError(str(refusal)) from None

    def view(self, command) -> str:
        path = memory_path(command.path)
        memory_file = selectors.memory_file_at(self.user_id, path)
        if memory_file is not None:
            return _numbered(path, memory_file.content, command.view_range)
        files = selectors.memory_files(self.user_id) if path == ROOT else selectors.memory_files_under(self.user_id, path)
        if path != ROOT and not files:
            raise ToolError(f"The path {command.path} does not exist. Please provide a valid path.")
        return _listing(path, files)

    def create(self, command) -> str:
        path = memory_path(command.path)
        services.memory_file_create(user_id=self.user_id, path=path, content=command.file_text)
        return f"File created successfully at: {path}"

    def str_replace(self, command) -> str:
        path, memory_file = self._file(command.path)
        content = memory_file.content
        count = content.count(command.old_str) if command.old_str else 0
        if count == 0:
            raise ToolError(
                f"No replacement was performed, old_str `{command.old_str}` did not appear verbatim in {path}."
            )
        if count > 1:
            lines = _lines_of(content, command.old_str)
            raise ToolError(
                f"No replacement was performed. Multiple occurrences of old_str `{command.old_str}` in lines: "
                f"{', '.join(map(str, lines))}. Please ensure it is unique"
            )
        changed_line = content[: content.find(command.old_str)].count("\n")
        content = content.replace(command.old_str, command.new_str)
        services.memory_file_write(memory_file=memory_file, content=content)
        lines = content.split("\n")
        start, end = max(0, changed_line - 2), min(len(lines), changed_line + 3)
        snippet = "\n".join(_numbered_line(number, lines[number - 1]) for number in range(start + 1, end + 1))
        return f"The memory file has been edited. Here is the snippet showing the change (with line numbers):\n{snippet}"

    def insert(self, command) -> str:
        path, memory_file = self._file(command.path)
        lines = memory_file.content.split("\n")
        if lines[-1] == "":
            lines.pop()
        if not 0 <= command.insert_line <= len(lines):
            raise ToolError(
                f"Invalid `insert_line` parameter: {command.insert_line}. It should be within the range "
                f"[0, {len(lines)}]."
            )
        lines.insert(command.insert_line, command.insert_text.rstrip("\n"))
        services.memory_file_write(memory_file=memory_file, content="\n".join(lines) + "\n")
        return f"The file {path} has been edited."

    def delete(self, command) -> str:
        path = memory_path(command.path)
        services.memory_path_delete(user_id=self.user_id, path=path)
        return f"Successfully deleted {path}"

    def rename(self, command) -> str:
        old_path, new_path = memory_path(command.old_path), memory_path(command.new_path)
        services.memory_path_rename(user_id=self.user_id, old_path=old_path, new_path=new_path)
        return f"Successfully renamed {old_path} to {new_path}"

    def _file(self, raw_path: str):
        path = memory_path(raw_path)
        memory_file = selectors.memory_file_at(self.user_id, path)
        if memory_file is None:
            if path == ROOT or selectors.memory_files_under(self.user_id, path):
                raise ToolError(f"The path {path} is not a file.")
            raise ToolError(f"The path {raw_path} does not exist. Please provide a valid path.")
        return path, memory_file


def _check_input(input: object) -> None:
    if not isinstance(input, dict) or input.get("command") not in COMMAND_FIELDS:
        raise ToolError(f"The command must be one of {', '.join(COMMAND_FIELDS)}.")
    for field, kind in COMMAND_FIELDS[input["command"]].items():
        value = input.get(field)
        if not isinstance(value, kind) or isinstance(value, bool):
            raise ToolError(f"`{field}` is required for {input['command']} and must be a {kind.__name__}.")
    view_range = input.get("view_range")
    if view_range is not None and not (
        isinstance(view_range, list) and len(view_range) == 2 and all(type(n) is int for n in view_range)
    ):
        raise ToolError("`view_range` must be two line numbers, [start, end] (end -1: to the end).")


def _numbered_line(number: int, line: str) -> str:
    return f"{str(number).rjust(LINE_NUMBER_WIDTH)}\t{line}"


def _numbered(path: str, content: str, view_range: list[int] | None) -> str:
    lines, first = content.split("\n"), 1
    if view_range:
        first = max(1, view_range[0])
        end = len(lines) if view_range[1] == -1 else view_range[1]
        lines = lines[first - 1:end]
    numbered = "\n".join(_numbered_line(first + offset, line) for offset, line in enumerate(lines))
    return f"Here's the content of {path} with line numbers:\n{numbered}"


def _listing(path: str, files) -> str:
    """The directory `path` and what is in it up to VIEW_DEPTH levels down, with sizes (a directory's: its
    files' together), as the SDK's file store lists a directory."""
    base_depth = path.count("/")
    sizes: dict[str, int] = {}
    for memory_file in files:
        parts = memory_file.path.split("/")
        for end in range(base_depth + 2, len(parts)):
            directory = "/".join(parts[:end]) + "/"
            if directory.count("/") - 1 - base_depth <= VIEW_DEPTH:
                sizes[directory] = sizes.get(directory, 0) + memory_file.size
        if memory_file.path.count("/") - base_depth <= VIEW_DEPTH:
            sizes[memory_file.path] = memory_file.size
    lines = [f"{_size(sum(memory_file.size for memory_file in files))}\t{path}"]
    lines += [f"{_size(size)}\t{entry}" for entry, size in sorted(sizes.items())]
    header = f"Here're the files and directories up to 2 levels deep in {path}, excluding hidden items:"
    return "\n".join([header, *lines])


def _size(size: int) -> str:
    if size < 1024:
        return f"{size}B"
    kib = size / 1024
    return f"{kib:.1f}K" if kib < 1024 else f"{kib / 1024:.1f}M"


def _lines_of(content: str, text: str) -> list[int]:
    lines, start = [], content.find(text)
    while start != -1:
        lines.append(content[:start].count("\n") + 1)
        start = content.find(text, start + 1)
    return lines
