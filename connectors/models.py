"""Remote MCP servers that admins connect the chat to, through the API's MCP connector (chat/llm/mcp.py).

The API itself calls the server: the request names it (`mcp_servers`) and offers its tools (`mcp_toolset`), and
the reply carries `mcp_tool_use` and `mcp_tool_result` blocks. Nothing here ever connects to the server.
"""

from django.core.exceptions import ValidationError
from django.db import models


def https_url(value: str) -> None:
    """The API accepts only https:// servers; refusing others here says so when the admin saves, not mid-reply."""
    if not value.lower().startswith("https://"):
        raise ValidationError("The MCP server's URL must start with https://.")


def tool_names(value: object) -> None:
    if not isinstance(value, list) or not all(isinstance(name, str) and name.strip() for name in value):
        raise ValidationError("Allowed tools must be a list of tool names.")


class McpServer(models.Model):
    """One remote MCP server. Its token is sent with every request that offers it, to the API only; the admin
    never shows it back (connectors/admin.py)."""

    name = models.SlugField(
        max_length=64, unique=True,
        help_text="How the model and the transcript name it (letters, digits, - and _), unique.",
    )
    url = models.URLField(max_length=500, validators=[https_url], help_text="https:// only, as the API requires.")
    authorization_token = models.CharField(
        max_length=4000, blank=True, help_text="The OAuth bearer token the server wants, if any. Never shown again."
    )
    allowed_tools = models.JSONField(
        default=list, blank=True, validators=[tool_names],
        help_text="The tools the model may call. Empty: every tool the server has.",
    )
    enabled = models.BooleanField(default=True)
    groups = models.ManyToManyField(
        "teams.Team", blank=True, related_name="+",
        help_text="Offered only to members of these groups (or of a group below one). Empty: everyone.",
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]
        verbose_name = "MCP server"

    def __str__(self):
        return self.name
