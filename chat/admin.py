from django.contrib import admin
from django.db.models import Count, Sum
from django.utils.html import format_html, format_html_join

from chat.models import ApiCall, Conversation, Message

COMPUTED_MESSAGE_FIELDS = (
    "status", "stop_reason", "error", "model", "input_tokens", "output_tokens", "cache_read_input_tokens",
    "cache_creation_input_tokens", "cost", "first_token_ms", "duration_ms", "seq", "heartbeat_at", "created_at",
)


class MessageInline(admin.TabularInline):
    """The transcript, read-only: admins review conversations, they do not rewrite them."""

    model = Message
    extra = 0
    can_delete = False
    fields = ("created_at", "role", "status", "transcript_text", "model", "input_tokens", "output_tokens",
              "cache_read_input_tokens", "cost")
    readonly_fields = fields
    show_change_link = True

    def has_add_permission(self, request, obj=None):
        return False

    @admin.display(description="text")
    def transcript_text(self, message):
        return format_html('<div style="white-space: pre-wrap; max-width: 60em">{}</div>', message.text)


@admin.register(Conversation)
class ConversationAdmin(admin.ModelAdmin):
    list_display = ("__str__", "owner", "model", "message_count", "total_cost", "updated_at")
    list_filter = ("model", "updated_at")
    search_fields = ("title", "owner__username", "owner__email")
    list_select_related = ("owner",)
    readonly_fields = ("owner", "created_at", "updated_at")
    fields = ("owner", "title", "model", "system_prompt", "created_at", "updated_at")
    date_hierarchy = "updated_at"
    inlines = [MessageInline]

    def get_queryset(self, request):
        return super().get_queryset(request).annotate(_message_count=Count("messages"), _total_cost=Sum("messages__cost"))

    @admin.display(description="messages", ordering="_message_count")
    def message_count(self, conversation):
        return conversation._message_count

    @admin.display(description="cost ($)", ordering="_total_cost")
    def total_cost(self, conversation):
        return conversation._total_cost


@admin.register(Message)
class MessageAdmin(admin.ModelAdmin):
    list_display = ("id", "conversation", "role", "status", "model", "input_tokens", "output_tokens",
                    "cache_read_input_tokens", "cost", "created_at")
    list_filter = ("status", "role", "model")
    search_fields = ("conversation__title", "conversation__owner__username")
    list_select_related = ("conversation",)
    readonly_fields = ("conversation", "role", "rendered_content", *COMPUTED_MESSAGE_FIELDS)
    exclude = ("content",)

    @admin.display(description="content")
    def rendered_content(self, message):
        return format_html_join(
            "", '<div style="white-space: pre-wrap; margin-bottom: 1em"><strong>{}</strong> {}</div>',
            ((block.get("type"), block.get("text") or block.get("thinking") or block.get("input") or "")
             for block in message.content),
        )


@admin.register(ApiCall)
class ApiCallAdmin(admin.ModelAdmin):
    """The ledger: every field is written by the system and never edited."""

    list_display = ("created_at", "user", "model", "status", "input_tokens", "output_tokens",
                    "cache_read_input_tokens", "cache_creation_5m_input_tokens", "cache_creation_1h_input_tokens",
                    "cost", "latency_ms", "first_token_ms", "is_retry", "is_fallback")
    list_filter = ("status", "model", "is_retry", "is_fallback", "created_at")
    search_fields = ("request_id", "user__username", "conversation__title")
    list_select_related = ("user",)
    date_hierarchy = "created_at"

    def get_readonly_fields(self, request, obj=None):
        return [field.name for field in self.model._meta.fields]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False
