from django.contrib.auth import get_user_model
from django.db.models import Exists

from chat.llm.memory_tool import memory_switched_on
from connectors.models import McpServer
from teams import selectors as team_selectors


def mcp_servers_for(user) -> list[McpServer]:
    """The enabled servers `user` may use: those for everyone, and those kept to a group the user is in or to a
    group above one of theirs. One query when there are none, two when there are (their groups), and the user's
    groups are read only when some server is kept to groups."""
    servers = list(McpServer.objects.filter(enabled=True).prefetch_related("groups").order_by("name"))
    if any(server.groups.all() for server in servers):
        teams = team_selectors.team_ids_above(user)[0]
        servers = [
            server for server in servers
            if not server.groups.all() or {group.pk for group in server.groups.all()} & teams
        ]
    return servers


def tools_on_offer(user) -> dict:
    """What the chat page's Settings dialog says the model may use besides its own tools: the MCP servers with
    their allowed tools, and whether the memory tool is on (the admin's switch and the user's).

    One query while no server is enabled, which is most pages: it asks both whether any server is and whether
    the admin has the memory on, as two subqueries of the user's own row (a row that is there, so the answer
    is one row even when neither table has one). The servers and their groups are read only when some are."""
    switches = (
        get_user_model().objects.filter(pk=user.pk)
        .values(memory=Exists(memory_switched_on()), any_server=Exists(McpServer.objects.filter(enabled=True)))
        .get()
    )
    servers = mcp_servers_for(user) if switches["any_server"] else []
    return {
        "mcp_servers": [(server.name, ", ".join(server.allowed_tools) or "all tools") for server in servers],
        "memory": user.memory_enabled and switches["memory"],
    }
