"""How the offline model's stores page their lists (Message Batches, Files) as the API does: newest first, by
`limit` (1 to 1,000), `after_id` (older than it) or `before_id` (newer than it). Ids compare as their creation
times do, so a cursor need not still exist."""

import os
import re
from pathlib import Path

import httpx2

from chat.llm.offline.validation import InvalidRequest

MAX_PAGE = 1000


def ids_page(directory: Path, state_file: re.Pattern, params: httpx2.QueryParams) -> tuple[list[str], bool]:
    """The ids of one page of the store in `directory` (each the first group of a `state_file` name), and
    whether there are more."""
    try:
        limit = int(params.get("limit", 20))
    except ValueError:
        limit = 0
    if not 1 <= limit <= MAX_PAGE:
        raise InvalidRequest(f"limit: Input should be between 1 and {MAX_PAGE}")
    names = (state_file.fullmatch(name) for name in os.listdir(directory))
    ids = sorted((found.group(1) for found in names if found), reverse=True)
    if "before_id" in params:
        newer = [found for found in ids if found > params["before_id"]]
        return newer[-limit:], len(newer) > limit
    after = params.get("after_id")
    older = [found for found in ids if found < after] if after else ids
    return older[:limit], len(older) > limit


def list_page(data: list[dict], page: list[str], has_more: bool) -> dict:
    return {
        "data": data,
        "has_more": has_more,
        "first_id": page[0] if page else None,
        "last_id": page[-1] if page else None,
    }
