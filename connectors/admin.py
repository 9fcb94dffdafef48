from urllib.parse import urlsplit

from django import forms
from django.contrib import admin

from connectors.models import McpServer

MAX_ALLOWED_TOOLS = 100


class McpServerForm(forms.ModelForm):
    """The token is write-only: the field is always empty on the page (never sent back to the browser), and an
    empty field keeps the stored token unless "clear token" is ticked. Allowed tools: one name per line."""

    url = forms.URLField(
        max_length=500, assume_scheme="https", help_text="https:// only, as the API requires.",
    )
    authorization_token = forms.CharField(
        required=False, max_length=4000, strip=True,
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "off"}),
        help_text="The OAuth bearer token the server wants, if any. Leave empty to keep the one stored.",
    )
    clear_token = forms.BooleanField(required=False, help_text="Remove the stored token.")
    allowed_tools = forms.CharField(
        required=False, widget=forms.Textarea(attrs={"rows": 4}),
        help_text="One tool name per line (or separated by commas). Empty: every tool the server has.",
    )

    class Meta:
        model = McpServer
        fields = ("name", "url", "authorization_token", "clear_token", "allowed_tools", "enabled", "groups")

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.initial["allowed_tools"] = "\n".join(self.instance.allowed_tools or [])
        self.initial["authorization_token"] = ""

    def clean_allowed_tools(self) -> list[str]:
        names = [name.strip() for line in self.cleaned_data["allowed_tools"].splitlines() for name in line.split(",")]
        names = list(dict.fromkeys(name for name in names if name))
        if len(names) > MAX_ALLOWED_TOOLS:
            raise forms.ValidationError(f"At most {MAX_ALLOWED_TOOLS} tools.")
        if any(len(name) > 128 for name in names):
            raise forms.ValidationError("A tool name is at most 128 characters.")
        return names

    def clean_authorization_token(self) -> str:
        token = self.cleaned_data["authorization_token"]
        return token or (self.instance.authorization_token if self.instance.pk else "")

    def clean(self):
        cleaned = super().clean()
        if cleaned.get("clear_token"):
            cleaned["authorization_token"] = ""
        return cleaned


@admin.register(McpServer)
class McpServerAdmin(admin.ModelAdmin):
    """Remote MCP servers the model may use (chat/llm/mcp.py). A change applies from the next reply."""

    form = McpServerForm
    list_display = ("name", "host", "enabled", "tools_shown", "has_token")
    list_editable = ("enabled",)
    filter_horizontal = ("groups",)
    search_fields = ("name", "url")

    @admin.display(description="Server")
    def host(self, server: McpServer) -> str:
        """The URL's host only: a secret put in its query string stays out of the list."""
        return urlsplit(server.url).netloc

    @admin.display(description="Allowed tools")
    def tools_shown(self, server: McpServer) -> str:
        return ", ".join(server.allowed_tools) or "all"

    @admin.display(description="Token", boolean=True)
    def has_token(self, server: McpServer) -> bool:
        return bool(server.authorization_token)
