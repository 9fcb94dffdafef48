"""The project prefix: what every request of a conversation in a project starts with.

The project's instructions are the first system block (the conversation's own system prompt follows, when it
has one) and its files are the first blocks of the first user turn (chat/llm/request.py puts them there, and
`cache_breakpoints_place` sets the breakpoints that cache them). Both are built from the project alone, never
from the conversation, so every conversation of the project sends the same bytes, and reads the cache that the
first of them wrote while it is warm.
"""

from dataclasses import dataclass

from chat.attachments.blocks import content_block
from chat.llm.tokens import estimate_tokens
from projects.models import Project


@dataclass(frozen=True)
class ProjectPrefix:
    instructions: str = ""
    blocks: tuple[dict, ...] = ()  # the files' image and document blocks, oldest file first
    file_tokens: int = 0  # the files' stored estimates (chat/attachments/), which stand for their blocks
    block_tokens: tuple[int, ...] = ()  # each file's stored estimate, in the order of `blocks`
    documents: tuple[int, ...] = ()  # the ids of the files that are document blocks, in order (chat/citations.py)
    files: tuple = ()  # the Attachment rows of `blocks`, in their order (filesapi/ sends them by file_id)

    @property
    def tokens(self) -> int:
        """About what the prefix takes of a context window: the project page's gauge."""
        return estimate_tokens(self.instructions) + self.file_tokens


NO_PROJECT = ProjectPrefix()


def project_prefix(project: Project | None) -> ProjectPrefix:
    """The prefix of `project`'s conversations: one query for the files, whose bytes come from the encoded
    files' cache (chat/attachments/blocks.py) after the first request."""
    if project is None:
        return NO_PROJECT
    files = list(project.files.order_by("id"))
    blocks = tuple(content_block(attachment) for attachment in files)
    return ProjectPrefix(
        instructions=project.instructions.strip(),
        blocks=blocks,
        documents=tuple(file.pk for file, block in zip(files, blocks) if block["type"] == "document"),
        file_tokens=sum(attachment.tokens for attachment in files),
        block_tokens=tuple(attachment.tokens for attachment in files),
        files=tuple(files),
    )


def project_prefix_tokens(project: Project) -> int:
    """The gauge's number, without reading the files: their stored estimates are enough."""
    file_tokens = sum(project.files.values_list("tokens", flat=True))
    return ProjectPrefix(instructions=project.instructions.strip(), file_tokens=file_tokens).tokens
