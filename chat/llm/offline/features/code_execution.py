"""The code execution server tool, offline: the code is written and "run", and nothing really runs.

A turn that asks to run or execute code, to compute with code, or to make a file or chart gets, with
`code_execution_20250825` (or a later version), a `text_editor_code_execution` call that creates the script
(the turn's fenced code block, or a made-up one) and a `bash_code_execution` call that runs it: its stdout is
the string literals the script prints. Files the container was given (`container_upload` blocks) are listed
first with `ls`. A request for a chart or a CSV produces one (a small PNG or CSV), stored in the offline Files
API (files.py) and named by its file_id in the result, so `client.beta.files.download` serves it. The older
`code_execution_20250522` gets one `code_execution` call and its `code_execution_tool_result`. The response
names its `container`: the one the request asked for, or one made up for the conversation.
"""

import hashlib
import io
import json
import re
from datetime import UTC, datetime, timedelta

from PIL import Image, ImageDraw

from chat.llm.offline.blocks import ReplyBlock
from chat.llm.offline.features import offered_tool, server_tool_id
from chat.llm.offline.files import FileRefused, offline_files, store_produced_file

# "Run this code", "execute the script", "compute it with Python": not "how do I run a marathon?". The gaps are
# bounded, so a long message costs time in proportion to its length, not to its length squared.
CODE_REQUEST = re.compile(
    r"\b(?:run|execute)\b[^.?!\n]{0,80}?\b(?:code|script|python|program|snippet|this|it)\b"
    r"|\bwith\s+(?:python|code)\b|\buse\s+code\b|\bcode\s+execution\b",
    re.IGNORECASE,
)
FILE_REQUEST = re.compile(
    r"\b(?:make|create|produce|generate|plot|draw|export)\b[^.?!]{0,80}?\b(?:file|chart|plot|graph|csv|image|png)\b",
    re.IGNORECASE,
)
FENCED_CODE = re.compile(r"```[\w+-]*\n(.*?)```", re.DOTALL)
PRINTED_LITERAL = re.compile(r"""\bprint\(\s*(?:f?"([^"\n]*)"|f?'([^'\n]*)')\s*\)""")
SCRIPT = "/tmp/offline_script.py"
CODE_NAMES = ("code_execution", "bash_code_execution", "text_editor_code_execution")
CONTAINER_DAYS = 30  # the API keeps a container 30 days
NOT_RUN = "offline model: this code did not really run"


def code_blocks(
    tools: list[dict], messages: list[dict], asks: str, *, forced: dict | None = None
) -> list[ReplyBlock]:
    """The code execution calls a turn asks for (or that tool_choice forces: `forced` is the tool), each a
    server_tool_use block and its result."""
    tool = offered_tool(tools, "code_execution_")
    if tool is None or not (forced is tool or CODE_REQUEST.search(asks) or FILE_REQUEST.search(asks)):
        return []
    fenced = FENCED_CODE.search(asks)
    produced = _produced(asks) if FILE_REQUEST.search(asks) else None
    code = fenced.group(1) if fenced else _made_up_code(produced)
    printed = [first or second for first, second in PRINTED_LITERAL.findall(code)]
    stdout = "".join(f"{line}\n" for line in printed) or f"{NOT_RUN}; it printed nothing.\n"
    outputs = []
    if produced:
        name, media_type, data = produced
        outputs.append(
            {"type": "bash_code_execution_output", "file_id": store_produced_file(name, media_type, data)}
        )
        stdout += f"saved {name}\n"
    blocks = [ReplyBlock("text", f"I will run code in a container ({NOT_RUN}).")]
    if tool.get("type") == "code_execution_20250522":
        result = {
            "type": "code_execution_result",
            "stdout": stdout,
            "stderr": "",
            "return_code": 0,
            "content": [],
        }
        return blocks + _call("code_execution", {"code": code}, "code_execution_tool_result", result)
    if uploads := _uploads(messages[-1]):
        listing = "".join(f"{name}\n" for name in uploads)
        blocks += _call(
            "bash_code_execution", {"command": "ls"}, "bash_code_execution_tool_result", _bash(listing)
        )
    created = {"type": "text_editor_code_execution_create_result", "is_file_update": False}
    editor_input = {"command": "create", "path": SCRIPT, "file_text": code}
    blocks += _call(
        "text_editor_code_execution", editor_input, "text_editor_code_execution_tool_result", created
    )
    run = {"command": f"python3 {SCRIPT}"}
    blocks += _call("bash_code_execution", run, "bash_code_execution_tool_result", _bash(stdout, outputs))
    return blocks


def container(prompt_container: str | None, messages: list[dict], blocks: list[ReplyBlock]) -> dict | None:
    """The response's `container` when the reply ran code: the request's, or one named after the
    conversation's first turn (the same conversation keeps its container)."""
    if not any(block.type == "server_tool_use" and block.tool_name in CODE_NAMES for block in blocks):
        return None
    first = json.dumps(messages[0]["content"], sort_keys=True).encode()
    container_id = prompt_container or f"container_offline_{hashlib.sha256(first).hexdigest()[:24]}"
    expires_at = datetime.now(UTC) + timedelta(days=CONTAINER_DAYS)
    return {"id": container_id, "expires_at": expires_at.isoformat(timespec="seconds").replace("+00:00", "Z")}


def _call(name: str, arguments: dict, result_type: str, content: dict) -> list[ReplyBlock]:
    call_id = server_tool_id()
    result = {"type": result_type, "tool_use_id": call_id, "content": content}
    return [
        ReplyBlock("server_tool_use", json.dumps(arguments), name, call_id),
        ReplyBlock(result_type, whole=result),
    ]


def _bash(stdout: str, outputs: list[dict] | None = None) -> dict:
    return {
        "type": "bash_code_execution_result",
        "stdout": stdout,
        "stderr": "",
        "return_code": 0,
        "content": outputs or [],
    }


def _uploads(message: dict) -> list[str]:
    """The names of the files a turn hands to the container (their file_id when the Files API has no name)."""
    names = []
    for block in message["content"]:
        if block.get("type") != "container_upload" or not isinstance(block.get("file_id"), str):
            continue
        try:
            names.append(offline_files.metadata(block["file_id"])["filename"])
        except FileRefused:
            names.append(block["file_id"])
    return names


def _produced(asks: str) -> tuple[str, str, bytes]:
    """The file a turn asks for: a CSV when it says so, else a small bar chart as PNG."""
    if re.search(r"\bcsv\b", asks, re.IGNORECASE):
        return "offline_data.csv", "text/csv", b"label,value\nfake a,1\nfake b,2\nfake c,3\n"
    image = Image.new("RGB", (64, 48), "white")
    draw = ImageDraw.Draw(image)
    for number, height in enumerate((12, 24, 36)):
        draw.rectangle((8 + number * 18, 44 - height, 20 + number * 18, 44), fill=(70, 110, 200))
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return "offline_chart.png", "image/png", buffer.getvalue()


def _made_up_code(produced: tuple[str, str, bytes] | None) -> str:
    lines = [f'print("{NOT_RUN}")']
    if produced:
        lines.append(f"# writes {produced[0]}")
    return "\n".join(lines) + "\n"
