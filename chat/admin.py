from django import forms
from django.contrib import admin
from django.contrib.admin.options import IncorrectLookupParameters
from django.core.exceptions import PermissionDenied
from django.db.models import Count, Sum
from django.http import HttpResponseBadRequest
from django.shortcuts import get_object_or_404
from django.urls import path, reverse
from django.utils import timezone
from django.utils.formats import date_format
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString, mark_safe
from django.utils.text import Truncator

from audit.services import audit_record
from billing import selectors as billing_selectors
from billing.money import money
from chat.attachments.views import file_response, thumbnail_response
from chat.frames import status_shown
from chat.llm.server_tools import MAX_USES_LIMIT, SERVER_TOOL_NAMES, options_clean
from chat.llm.tools import TOOL_NAMES
from chat.models import ApiCall, Attachment, Conversation, Message, ToolSetting
from chat.selectors import Tree
from config.spreadsheets import csv_response
from shares.models import Share


class SystemRecordAdmin(admin.ModelAdmin):
    """Rows only the system writes (the ledger, uploads, alerts): admins read them, never add or edit them.

    `shown_as` names, for a field, the display shown in its place, in the same position (a cost as money, a
    message as a link): {"cost": "cost_shown"}."""

    shown_as: dict[str, str] = {}

    def get_readonly_fields(self, request, obj=None):
        return [self.shown_as.get(field.name, field.name) for field in self.model._meta.fields]

    def get_exclude(self, request, obj=None):
        return [*(super().get_exclude(request, obj) or ()), *self.shown_as]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False


def money_column(field: str, description: str, places: int | None = None):
    """An admin column and read-only field showing the Decimal `field` as money ("$0.0123", billing/money.py),
    sortable by the field; for a list, a detail page and an inline alike. Empty (no budget set) shows "-"."""

    @admin.display(description=description, ordering=field)
    def shown(model_admin, obj):
        amount = getattr(obj, field)
        return "-" if amount is None else money(amount) if places is None else money(amount, places)

    return shown


def opened_by_admin(request, what: str, thing, owner) -> None:
    """An admin reading another user's conversation, message or file is recorded in the audit log: the admin
    may, and the user may ask who did. Reading their own is not."""
    if owner.pk != request.user.pk:
        audit_record(
            actor=request.user, action=f"admin.{what}_opened", subject=f"{what} {thing.pk} of {owner.username}",
            detail={"id": thing.pk, "owner": owner.username}, request=request,
        )


def attachment_previews(attachments) -> str:
    """Each attachment as a thumbnail (a PDF as its page count) over its name, linking to the stored file, all
    served by the admin's own views. Names are the uploader's text: format_html escapes them."""
    return format_html_join("", "{}", ((_attachment_preview(attachment),) for attachment in attachments))


def _attachment_preview(attachment: Attachment) -> str:
    if attachment.thumbnail:
        thumbnail_url = reverse("admin:chat_attachment_thumbnail", args=[attachment.pk])
        preview = format_html('<img src="{}" alt="">', thumbnail_url)
    elif attachment.page_count:
        preview = format_html("PDF, {} page{}", attachment.page_count, "" if attachment.page_count == 1 else "s")
    else:
        preview = format_html("Text, about {} tokens", attachment.tokens)
    return format_html(
        '<a class="attachment-preview" href="{}">{}<br>{}</a>',
        reverse("admin:chat_attachment_file", args=[attachment.pk]), preview, attachment.name,
    )


COMPUTED_MESSAGE_FIELDS = (
    "status", "stop_reason", "error", "model", "route_reason", "notices", "input_tokens", "output_tokens",
    "cache_read_input_tokens", "cache_creation_input_tokens", "cost_shown", "first_token_ms", "duration_ms",
    "context_tokens", "context_window", "seq", "heartbeat_at", "created_at",
)


class MessageInline(admin.TabularInline):
    """The transcript, read-only: admins review conversations, they do not rewrite them."""

    model = Message
    extra = 0
    can_delete = False
    fields = ("created_at", "role", "status", "transcript_text", "attachment_previews", "model", "input_tokens",
              "output_tokens", "cache_read_input_tokens", "cost_shown")
    readonly_fields = fields
    show_change_link = True
    cost_shown = money_column("cost", "cost")

    def get_queryset(self, request):
        return super().get_queryset(request).prefetch_related("attachments")

    def has_add_permission(self, request, obj=None):
        return False

    @admin.display(description="attachments")
    def attachment_previews(self, message):
        return attachment_previews(message.attachments.all())

    @admin.display(description="text")
    def transcript_text(self, message):
        return format_html('<div class="transcript-text">{}</div>', message.text)


class ShareInline(admin.TabularInline):
    """Who the owner shared the conversation with, read-only: a share is the owner's to make and revoke. The
    token is left out: it is the link itself."""

    model = Share
    extra = 0
    can_delete = False
    fields = ("audience", "mode", "recipient_names", "created_by", "created_at", "revoked_at")
    readonly_fields = fields

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("created_by").prefetch_related("recipients")

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    @admin.display(description="recipients")
    def recipient_names(self, share):
        return ", ".join(sorted(user.username for user in share.recipients.all())) or "-"


TREE_TEXT_CHARS = 80
VERSIONS_OPENED, VERSIONS_CLOSED = mark_safe('<ul class="message-versions">'), mark_safe("</ul>")
VERSION_OPENED, VERSION_CLOSED = mark_safe("<li>"), mark_safe("</li>")


def message_tree(conversation: Conversation) -> SafeString:
    """Every message of the conversation as its tree, from one query whatever its size: a line of messages
    stays at one level; where a message has versions, each version and what follows it is a nested list, in
    order, numbered "2 / 3". The active path (what the owner sees and the model is sent) is marked.

    Built with a stack, not recursion: a long conversation edited at every turn nests as deep as it is
    long."""
    messages = {message.pk: message for message in conversation.messages.order_by("id")}
    tree = Tree({message_id: message.parent_id for message_id, message in messages.items()})
    on_path = set(tree.path_to(conversation.current_leaf_id))
    lines: list[SafeString] = []
    pending = _what_follows(tree.children(None))
    while pending:
        item = pending.pop()
        if isinstance(item, SafeString):  # a list of versions opening or closing
            lines.append(item)
            continue
        lines.append(_tree_line(messages[item], tree.siblings(item), item in on_path))
        pending.extend(_what_follows(tree.children(item)))
    return format_html('<div class="message-tree">{}</div>', format_html_join("", "{}", ([li] for li in lines)))


def _what_follows(versions: list[int]) -> list[int | SafeString]:
    """The messages answering one message, as items for the stack (popped last first): its one reply, on the
    same level, or its versions, each in an item of a nested list."""
    if len(versions) <= 1:
        return list(versions)
    items: list[int | SafeString] = [VERSIONS_CLOSED]
    for version in reversed(versions):
        items.extend([VERSION_CLOSED, version, VERSION_OPENED])
    return [*items, VERSIONS_OPENED]


def _tree_line(message: Message, versions: list[int], on_path: bool) -> SafeString:
    text = " ".join(message.text.split()) or ", ".join(block.get("type", "?") for block in message.content)
    version = f"{versions.index(message.pk) + 1} / {len(versions)}" if len(versions) > 1 else ""
    return format_html(
        '<div class="tree-message{}"><span class="tree-marker" title="{}">{}</span> '
        '<a href="{}">#{}</a> {} · {} · {} <span class="tree-version">{}</span></div>',
        " on-path" if on_path else "", "On the active path" if on_path else "Another version",
        "●" if on_path else "○", reverse("admin:chat_message_change", args=[message.pk]), message.pk,
        message.role, status_shown(message)[0], Truncator(text).chars(TREE_TEXT_CHARS) or "(empty)", version,
    )


@admin.register(Conversation)
class ConversationAdmin(admin.ModelAdmin):
    list_display = ("__str__", "owner", "model", "message_count", "total_cost", "updated_at")
    list_filter = ("model", "updated_at")
    search_fields = ("title", "owner__username", "owner__email")
    list_select_related = ("owner",)
    readonly_fields = ("owner", "created_at", "updated_at", "tree")
    fields = ("owner", "title", "model", "system_prompt", "thinking", "created_at", "updated_at", "tree")
    date_hierarchy = "updated_at"
    inlines = (ShareInline, MessageInline)

    def get_queryset(self, request):
        return super().get_queryset(request).annotate(_message_count=Count("messages"), _total_cost=Sum("messages__cost"))

    def change_view(self, request, object_id, form_url="", extra_context=None):
        response = super().change_view(request, object_id, form_url, extra_context)
        if request.method == "GET" and response.status_code == 200:
            conversation = response.context_data["original"]
            opened_by_admin(request, "conversation", conversation, conversation.owner)
        return response

    @admin.display(description="messages", ordering="_message_count")
    def message_count(self, conversation):
        return conversation._message_count

    total_cost = money_column("_total_cost", "cost")

    @admin.display(description="messages as a tree")
    def tree(self, conversation):
        return message_tree(conversation) if conversation.pk else "-"


@admin.register(Message)
class MessageAdmin(admin.ModelAdmin):
    list_display = ("id", "conversation", "role", "status", "model", "input_tokens", "output_tokens",
                    "cache_read_input_tokens", "cost_shown", "created_at")
    list_filter = ("status", "role", "model")
    search_fields = ("conversation__title", "conversation__owner__username")
    list_select_related = ("conversation",)
    readonly_fields = ("conversation", "parent", "role", "rendered_content", "attachment_previews",
                       *COMPUTED_MESSAGE_FIELDS)
    exclude = ("content", "cost")  # cost: read-only, as money (cost_shown)
    cost_shown = money_column("cost", "cost")

    def change_view(self, request, object_id, form_url="", extra_context=None):
        response = super().change_view(request, object_id, form_url, extra_context)
        if request.method == "GET" and response.status_code == 200:
            message = response.context_data["original"]
            opened_by_admin(request, "message", message, message.conversation.owner)
        return response

    @admin.display(description="attachments")
    def attachment_previews(self, message):
        return attachment_previews(message.attachments.all())

    @admin.display(description="content")
    def rendered_content(self, message):
        return format_html_join(
            "", '<div class="content-block"><strong>{}</strong> {}</div>',
            ((block.get("type"),
              block.get("text") or block.get("thinking") or block.get("input") or block.get("content") or "")
             for block in message.content),
        )


CSV_COLUMNS = (
    "id", "created_at", "user_id", "user__username", "conversation_id", "message_id", "model", "purpose", "status",
    "input_tokens", "output_tokens", "cache_read_input_tokens", "cache_creation_5m_input_tokens",
    "cache_creation_1h_input_tokens", "cost", "latency_ms", "first_token_ms", "stop_reason", "request_id",
    "http_status", "attempt", "is_retry", "is_fallback",
)


@admin.register(ApiCall)
class ApiCallAdmin(SystemRecordAdmin):
    """The ledger: every field is written by the system and never edited.

    The changelist shows totals of the filtered rows under the list, and exports exactly those rows as CSV
    (templates/admin/chat/apicall/change_list.html).
    """

    # Narrow enough for a laptop (1280 px, filters beside it): each kind of token has its own field on the
    # detail page and in the totals and the CSV; the list shows input with its cached part.
    list_display = ("when", "user", "api_key", "reply", "model", "status", "input_shown", "output_shown",
                    "cost_shown", "latency", "first_token", "attempt_kind")
    list_filter = (("user", admin.RelatedOnlyFieldListFilter), ("api_key", admin.RelatedOnlyFieldListFilter),
                   "model", "purpose", "created_at", "status", "is_fallback", "is_retry")
    search_fields = ("request_id", "user__username", "conversation__title")
    list_select_related = ("user", "api_key")
    date_hierarchy = "created_at"
    # The message as `reply`: a link while the message exists, "deleted" after.
    shown_as = {"message": "reply", "cost": "cost_shown", "server_tool_cost": "server_tool_cost_shown"}
    cost_shown = money_column("cost", "cost")
    server_tool_cost_shown = money_column("server_tool_cost", "server tool cost (part of the cost)")

    @admin.display(description="input (cached)", ordering="input_tokens")
    def input_shown(self, call):
        """Every input token, with those read from or written to the cache in brackets: `input_tokens` alone is
        what followed the last cache breakpoint, and reads "0" for a long prompt served from the cache."""
        cached = call.cache_read_input_tokens + call.cache_creation_input_tokens
        return f"{call.input_tokens + cached:,} ({cached:,})" if cached else f"{call.input_tokens:,}"

    @admin.display(description="output", ordering="output_tokens")
    def output_shown(self, call):
        return f"{call.output_tokens:,}"

    @admin.display(description="latency", ordering="latency_ms")
    def latency(self, call):
        return _seconds(call.latency_ms)

    @admin.display(description="first token", ordering="first_token_ms")
    def first_token(self, call):
        return _seconds(call.first_token_ms)

    @admin.display(description="created at", ordering="created_at")
    def when(self, call):
        return date_format(timezone.localtime(call.created_at), "Y-m-d H:i")

    @admin.display(description="retry")
    def attempt_kind(self, call):
        """A retried attempt, a call to the fallback model, both or neither (the list filters by each)."""
        kinds = (("retry", call.is_retry), ("fallback", call.is_fallback))
        return " · ".join(kind for kind, flag in kinds if flag) or "-"

    @admin.display(description="message")
    def reply(self, call):
        """The message the call produced, linked while it exists: deleting a branch keeps the row. A title's
        call produced no message (chat/titles.py)."""
        if call.purpose == ApiCall.Purpose.TITLE:
            return "title"
        if call.message_id is None:
            return "deleted"
        url = reverse("admin:chat_message_change", args=[call.message_id])
        return format_html('<a href="{}">#{}</a>', url, call.message_id)

    def get_urls(self):
        export = path("export.csv", self.admin_site.admin_view(self.export_csv), name="chat_apicall_export")
        return [export, *super().get_urls()]

    def changelist_view(self, request, extra_context=None):
        response = super().changelist_view(request, extra_context)
        changelist = getattr(response, "context_data", {}).get("cl")  # absent on redirects and errors
        if changelist is not None:
            response.context_data["totals"] = billing_selectors.ledger_totals(changelist.queryset)
        return response

    def export_csv(self, request):
        """The rows the changelist shows for the same query string (filters, search, date), all pages."""
        if not self.has_view_permission(request):
            raise PermissionDenied
        try:
            changelist = self.get_changelist_instance(request)
        except IncorrectLookupParameters:
            return HttpResponseBadRequest("Unknown filter.")
        stamp = timezone.now().strftime("%Y%m%d-%H%M%S")
        rows = changelist.queryset.values_list(*CSV_COLUMNS).iterator()
        return csv_response(f"api-calls-{stamp}.csv", CSV_COLUMNS, rows)


def _seconds(milliseconds: int | None) -> str:
    return "-" if milliseconds is None else f"{milliseconds / 1000:.2f} s"


@admin.register(Attachment)
class AttachmentAdmin(SystemRecordAdmin):
    """Uploads, read-only. Files are served by this admin's own views (staff with view permission), never by URL."""

    list_display = ("preview", "name", "owner", "kind", "size", "width", "height", "page_count", "message",
                    "created_at")
    list_filter = ("kind", ("message", admin.EmptyFieldListFilter), "created_at")
    search_fields = ("name", "owner__username", "sha256")
    list_select_related = ("owner", "message")
    date_hierarchy = "created_at"
    exclude = ("pages",)

    def get_urls(self):
        return [
            path("<int:attachment_id>/file/", self.admin_site.admin_view(self.file_view), name="chat_attachment_file"),
            path("<int:attachment_id>/thumbnail/", self.admin_site.admin_view(self.thumbnail_view),
                 name="chat_attachment_thumbnail"),
            *super().get_urls(),
        ]

    def get_readonly_fields(self, request, obj=None):
        return ["preview", *(field.name for field in self.model._meta.fields if field.name != "pages")]

    @admin.display(description="preview")
    def preview(self, attachment):
        return attachment_previews([attachment])

    def change_view(self, request, object_id, form_url="", extra_context=None):
        response = super().change_view(request, object_id, form_url, extra_context)
        if request.method == "GET" and response.status_code == 200:
            attachment = response.context_data["original"]
            opened_by_admin(request, "attachment", attachment, attachment.owner)
        return response

    def file_view(self, request, attachment_id):
        attachment = self._opened(request, attachment_id)
        return file_response(attachment.file, attachment.media_type, attachment.name)

    def thumbnail_view(self, request, attachment_id):
        return thumbnail_response(self._opened(request, attachment_id))

    def _opened(self, request, attachment_id) -> Attachment:
        """The attachment, for staff with view permission; opening another user's file is recorded."""
        if not self.has_view_permission(request):
            raise PermissionDenied
        attachment = get_object_or_404(Attachment.objects.select_related("owner"), pk=attachment_id)
        opened_by_admin(request, "attachment", attachment, attachment.owner)
        return attachment


class ToolSettingForm(forms.ModelForm):
    """A tool's switch and, for a server tool (chat/llm/server_tools.py), its options: the domains it may or may
    not reach (one hostname a line; the API refuses both lists at once) and its most uses per reply."""

    # "memory": the memory tool (chat/llm/memory_tool.py), off unless a row here turns it on.
    name = forms.ChoiceField(choices=[(name, name) for name in (*TOOL_NAMES, *SERVER_TOOL_NAMES, "memory")])
    allowed_domains = forms.CharField(
        required=False, widget=forms.Textarea(attrs={"rows": 3}),
        help_text="Server tools: only these hostnames, one a line (example.com covers its subdomains).",
    )
    blocked_domains = forms.CharField(
        required=False, widget=forms.Textarea(attrs={"rows": 3}),
        help_text="Server tools: never these hostnames, one a line. Give allowed or blocked domains, not both.",
    )
    max_uses = forms.IntegerField(
        required=False, min_value=1, max_value=MAX_USES_LIMIT,
        help_text=f"Server tools: the most uses in one reply, over all its requests (1 to {MAX_USES_LIMIT}); empty for 5.",
    )

    class Meta:
        model = ToolSetting
        fields = ("name", "enabled")

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        options = self.instance.options if isinstance(self.instance.options, dict) else {}
        for key in ("allowed_domains", "blocked_domains"):
            self.fields[key].initial = "\n".join(options.get(key, ()))
        self.fields["max_uses"].initial = options.get("max_uses")

    def clean(self):
        cleaned = super().clean()
        name = cleaned.get("name")
        given = {
            "allowed_domains": (cleaned.get("allowed_domains") or "").split(),
            "blocked_domains": (cleaned.get("blocked_domains") or "").split(),
            "max_uses": cleaned.get("max_uses"),
        }
        if name not in SERVER_TOOL_NAMES:
            if any(given.values()):
                raise forms.ValidationError("Only server tools take domains and a number of uses.")
            self.instance.options = {}
            return cleaned
        try:
            self.instance.options = options_clean(name, given)
        except ValueError as error:
            raise forms.ValidationError(str(error)) from None
        return cleaned


@admin.register(ToolSetting)
class ToolSettingAdmin(admin.ModelAdmin):
    """Switches for the built-in tools (chat/llm/tools.py) and Anthropic's server tools (chat/llm/server_tools.py).
    A built-in tool with no row here is on; add one to turn it off. A server tool is off until a row turns it on.
    A change applies from the next request."""

    form = ToolSettingForm
    list_display = ("name", "enabled", "options_shown")
    list_editable = ("enabled",)

    @admin.display(description="options")
    def options_shown(self, setting):
        """A server tool's domains and limit in words ("allowed: example.com · max uses: 3"), "-" for none."""
        options = setting.options if isinstance(setting.options, dict) else {}
        words = [f"{key.replace('_domains', '')}: {', '.join(options[key])}"
                 for key in ("allowed_domains", "blocked_domains") if options.get(key)]
        if options.get("max_uses"):
            words.append(f"max uses: {options['max_uses']}")
        return " · ".join(words) or "-"
