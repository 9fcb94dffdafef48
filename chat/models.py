from decimal import Decimal

from django.conf import settings
from django.db import models
from django.db.models import Q


class ThinkingLevel(models.TextChoices):
    """How much a conversation's replies think first (chat/llm/request.py turns a level into request options)."""

    OFF = "off"
    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"
    # Effort "max": only the models that take it (`ModelSpec.max_effort`); the others think at "high" instead.
    MAX = "max"


class CacheTtl(models.TextChoices):
    """The prompt cache's time to live for a conversation's breakpoints: 5 minutes (writes cost 1.25x input) or
    1 hour (writes cost 2x, worth it when the next turn is likely to come after 5 minutes)."""

    FIVE_MINUTES = "5m", "5 minutes"
    ONE_HOUR = "1h", "1 hour"


class TitleSource(models.TextChoices):
    """Who gave a conversation its title: its first message, the model (a short summary written once, after the
    first reply that completes: chat/titles.py), or the user (a rename). The model replaces only a first
    message's title, by a conditional UPDATE, so a rename always wins, even one made while the title is being
    written; a rename of a model's title is the user's like any other."""

    NONE = "", "None yet"
    FIRST_MESSAGE = "first_message"
    MODEL = "model"
    USER = "user"


class Conversation(models.Model):
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="conversations")
    title = models.CharField(max_length=200, blank=True)
    title_source = models.CharField(max_length=16, choices=TitleSource.choices, default=TitleSource.NONE, blank=True)
    model = models.CharField(max_length=100)
    system_prompt = models.TextField(blank=True)
    thinking = models.CharField(
        max_length=8, choices=ThinkingLevel.choices, default=ThinkingLevel.OFF,
        help_text="Extended thinking: a token budget, or an effort level on models that think adaptively.",
    )
    cache_ttl = models.CharField(
        max_length=4, choices=CacheTtl.choices, default=CacheTtl.FIVE_MINUTES,
        help_text="How long the prompt cache keeps this conversation's prefix after each use.",
    )
    project = models.ForeignKey(
        "projects.Project", on_delete=models.SET_NULL, null=True, blank=True, related_name="conversations",
        help_text="Its requests start with the project's instructions and files.",
    )
    # The last message of the active path: the conversation shows, and sends the model, the path from the root
    # down to it (chat/selectors.py `active_path`). Empty while the conversation has no messages.
    current_leaf = models.ForeignKey(
        "Message", on_delete=models.SET_NULL, null=True, blank=True, related_name="+",
    )
    # One higher with every change that publishes a `tree` frame (regenerate, edit, switch, delete), in the
    # transaction that makes it: frames from several processes may arrive out of order, and a client applies a
    # tree frame only if its version is not below the last it applied (docs/protocol.md).
    tree_version = models.PositiveIntegerField(default=0)
    # Pinned conversations head the sidebar, newest pin first; archived ones leave it for the Archived page.
    pinned_at = models.DateTimeField(null=True, blank=True)
    archived_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-updated_at", "-id"]
        indexes = [
            # The sidebar (chat/selectors.py `conversations_for_user`): a user's conversations not archived,
            # most recently active first; pinned ones are among them and grouped in Python.
            models.Index(
                fields=["owner", "-updated_at"], condition=Q(archived_at__isnull=True), name="conversation_sidebar",
            ),
            # The Archived page (`conversations_archived`): most recently archived first.
            models.Index(
                fields=["owner", "-archived_at"], condition=Q(archived_at__isnull=False),
                name="conversation_archived",
            ),
        ]

    def __str__(self):
        return self.title or f"Conversation {self.pk}"


INTERRUPTED_REASON = "The server stopped while this reply was being written. What was saved is shown; you can retry."


class Message(models.Model):
    class Role(models.TextChoices):
        USER = "user"
        ASSISTANT = "assistant"

    class Status(models.TextChoices):
        STREAMING = "streaming"
        # Submitted as a Message Batch ("not urgent: half price"): no generation owns it; the batch worker
        # stores its reply when the batch has ended (batches/).
        QUEUED = "queued"
        COMPLETE = "complete"
        STOPPED = "stopped"
        FAILED = "failed"
        INTERRUPTED = "interrupted"

    conversation = models.ForeignKey(Conversation, on_delete=models.CASCADE, related_name="messages")
    # A conversation is a tree: a regenerated reply is a sibling of the one before, an edited message a sibling
    # of the original. Deleting a message deletes its subtree. Roots (the first messages) have none.
    parent = models.ForeignKey("self", on_delete=models.CASCADE, null=True, blank=True, related_name="children")
    role = models.CharField(max_length=16, choices=Role.choices)
    # Content blocks as the Messages API sees them; attachments are referenced, never inlined as base64.
    content = models.JSONField(default=list)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.COMPLETE)
    error = models.TextField(blank=True, help_text="Why the reply failed or was cut short, in words a user reads.")
    stop_reason = models.CharField(max_length=32, blank=True)
    model = models.CharField(max_length=100, blank=True)
    input_tokens = models.PositiveIntegerField(default=0)
    output_tokens = models.PositiveIntegerField(default=0)
    cache_read_input_tokens = models.PositiveIntegerField(default=0)
    cache_creation_input_tokens = models.PositiveIntegerField(default=0)
    cost = models.DecimalField(max_digits=12, decimal_places=6, default=Decimal("0"))
    first_token_ms = models.PositiveIntegerField(null=True, blank=True, help_text="Time to first token.")
    duration_ms = models.PositiveIntegerField(null=True, blank=True)
    # Streaming bookkeeping: the sequence number of the last frame in `content`, and when the generating
    # process last proved it was alive. A `streaming` message with an old heartbeat was left by a dead process.
    seq = models.PositiveIntegerField(default=0)
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    # The ownership token of the generation writing a `streaming` reply; empty once it is settled or swept.
    # Checkpoints, the final save and the stale sweep write only while it matches (a conditional UPDATE), so a
    # reply that was swept, stopped or taken over is never resurrected or settled twice.
    owner_token = models.CharField(max_length=32, blank=True, default="")
    route_reason = models.CharField(
        max_length=200, blank=True, help_text="Why the Auto choice picked this reply's model; empty when the user picked it."
    )
    notices = models.JSONField(
        default=list, blank=True,
        help_text="Sentences about how the reply was made: a fallback model, history left out, a tool limit.",
    )
    # How full the model's context window was after this reply (the last request's input plus its output), for
    # the composer's gauge.
    context_tokens = models.PositiveIntegerField(null=True, blank=True)
    context_window = models.PositiveIntegerField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        # By id, not by timestamp: several hosts' clocks disagree, ids are handed out by the one database.
        ordering = ["id"]
        indexes = [
            # The transcript: a conversation's messages in order.
            models.Index(fields=["conversation", "id"], name="message_conversation_order"),
            # Recovery sweeps: streaming messages whose heartbeat went stale.
            models.Index(fields=["status", "heartbeat_at"], name="message_status_heartbeat"),
        ]
        constraints = [
            # At most one generation per conversation, across every process.
            models.UniqueConstraint(
                fields=["conversation"], condition=Q(status="streaming"), name="message_one_stream_per_conversation"
            ),
        ]

    def __str__(self):
        return f"{self.role} #{self.pk} in {self.conversation_id}"

    @property
    def text(self) -> str:
        return "".join(block.get("text", "") for block in self.content if block.get("type") == "text")


class ApiCall(models.Model):
    """One upstream request to the model: the ledger. It outlives the conversation and message it served."""

    class Status(models.TextChoices):
        OK = "ok"
        ERROR = "error"
        STOPPED = "stopped"

    class Purpose(models.TextChoices):
        """What the call was for: a reply (its requests, tool rounds and fallbacks), a conversation's title
        (chat/titles.py; its row has the conversation and no message), a reply made in a Message Batch (priced
        at the batch rate, batches/), or a call of the Anthropic-compatible API made with a personal key
        (apikeys/; its row names the key and has no conversation). Every sum of spend counts them all."""

        REPLY = "reply"
        TITLE = "title"
        BATCH = "batch"
        API = "api"

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, related_name="api_calls")
    conversation = models.ForeignKey(Conversation, on_delete=models.SET_NULL, null=True, related_name="api_calls")
    message = models.ForeignKey(Message, on_delete=models.SET_NULL, null=True, blank=True, related_name="api_calls")
    api_key = models.ForeignKey(
        "apikeys.ApiKey", on_delete=models.SET_NULL, null=True, blank=True, related_name="api_calls",
        help_text="The personal API key the call was made with; empty for the chat's own calls.",
    )
    model = models.CharField(max_length=100)
    purpose = models.CharField(max_length=16, choices=Purpose.choices, default=Purpose.REPLY)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.OK)
    input_tokens = models.PositiveIntegerField(default=0)
    output_tokens = models.PositiveIntegerField(default=0, help_text="Thinking tokens included.")
    cache_read_input_tokens = models.PositiveIntegerField(default=0)
    cache_creation_5m_input_tokens = models.PositiveIntegerField(default=0)
    cache_creation_1h_input_tokens = models.PositiveIntegerField(default=0)
    # Prices in force when the call was made, in dollars per million tokens: a later price change never
    # rewrites what a past call cost.
    price_snapshot = models.JSONField(default=dict)
    cost = models.DecimalField(max_digits=12, decimal_places=6, default=Decimal("0"))
    latency_ms = models.PositiveIntegerField(null=True, blank=True)
    first_token_ms = models.PositiveIntegerField(null=True, blank=True)
    stop_reason = models.CharField(max_length=32, blank=True)
    request_id = models.CharField(max_length=100, blank=True)
    http_status = models.PositiveSmallIntegerField(null=True, blank=True)
    error = models.TextField(blank=True)
    attempt = models.PositiveSmallIntegerField(default=1, help_text="1 for the first try, 2+ for retries.")
    is_retry = models.BooleanField(default=False)
    is_fallback = models.BooleanField(default=False)
    # The reply, request and attempt this row is for: unique, so a retried settle or a replayed log line never
    # bills twice (billing/ledger.py). Empty on rows written before it existed.
    settle_key = models.CharField(max_length=100, null=True, blank=True, unique=True)
    # Server tools the request used, as the usage reports them ({"web_search_requests": 2, ...}), and what that use
    # cost beside the tokens (web searches are billed per thousand); `cost` includes it.
    server_tool_use = models.JSONField(default=dict, blank=True)
    server_tool_cost = models.DecimalField(max_digits=12, decimal_places=6, default=Decimal("0"))
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            # A user's spend this month (usage page, budgets).
            models.Index(fields=["user", "created_at"], name="apicall_user_created"),
            # Spend per model over a period (admin dashboard).
            models.Index(fields=["model", "created_at"], name="apicall_model_created"),
        ]

    def __str__(self):
        return f"{self.model} call #{self.pk}"

    @property
    def cache_creation_input_tokens(self) -> int:
        return self.cache_creation_5m_input_tokens + self.cache_creation_1h_input_tokens


class Attachment(models.Model):
    """An uploaded image, PDF or text document, processed once at upload; the user message that sends it then
    claims it.

    `file` holds what the model receives (a re-encoded image, the validated PDF, or text as UTF-8: a text
    file, a Word document's text, the text of a PDF too long to send as one), under a generated name in
    MEDIA_ROOT; `name` is only ever displayed. Rows of one owner with the same `sha256` share one file (a
    multi-page TIFF is a row per page, each with its own file).
    """

    class Kind(models.TextChoices):
        IMAGE = "image"
        PDF = "pdf", "PDF"
        TEXT = "text"

    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="attachments")
    message = models.ForeignKey(
        Message, on_delete=models.CASCADE, null=True, blank=True, related_name="attachments",
        help_text="The user message that sent it; empty while the upload waits in the composer.",
    )
    project = models.ForeignKey(
        "projects.Project", on_delete=models.CASCADE, null=True, blank=True, related_name="files",
        help_text="The project whose file it is: sent at the start of every conversation in the project.",
    )
    kind = models.CharField(max_length=8, choices=Kind.choices)
    name = models.CharField(max_length=255, help_text="The uploaded file's name, sanitised; only displayed.")
    sha256 = models.CharField(max_length=64, help_text="Of the uploaded bytes.")
    media_type = models.CharField(max_length=64, help_text="Of the stored file.")
    file = models.CharField(max_length=255, help_text="The stored file, relative to MEDIA_ROOT.")
    thumbnail = models.CharField(max_length=255, blank=True, help_text="Relative to MEDIA_ROOT; images only.")
    size = models.PositiveIntegerField(help_text="Bytes of the stored file.")
    width = models.PositiveIntegerField(null=True, blank=True)
    height = models.PositiveIntegerField(null=True, blank=True)
    page_count = models.PositiveIntegerField(null=True, blank=True, help_text="Of an uploaded PDF.")
    pages = models.JSONField(default=list, blank=True, help_text="The text of each PDF page.")
    tokens = models.PositiveIntegerField(default=0, help_text="Estimated input tokens.")
    note = models.TextField(
        blank=True, help_text="What the user must know about what the model gets, e.g. a PDF's text only."
    )
    # Set by services.attachments_upload to readers.PIPELINE_VERSION; a row that does not say is taken for the
    # first version's, whose files an upload never reuses.
    pipeline = models.PositiveSmallIntegerField(
        default=1, help_text="The version of the processing that made its files (chat/attachments/readers.py)."
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["created_at", "id"]
        indexes = [
            # An upload of bytes the owner sent before reuses the processed file.
            models.Index(fields=["owner", "sha256"], name="attachment_owner_sha256"),
            # attachments_cleanup: unclaimed uploads older than a day.
            models.Index(
                fields=["created_at"], condition=Q(message__isnull=True, project__isnull=True),
                name="attachment_unclaimed",
            ),
        ]

    def __str__(self):
        return self.name


class ToolSetting(models.Model):
    """An admin's switch for one built-in tool (chat/llm/tools.py). A tool without a row is on."""

    name = models.CharField(max_length=64, unique=True)
    enabled = models.BooleanField(default=True)
    # A server tool's settings: allowed_domains, blocked_domains, max_uses (chat/llm/server_tools.py).
    options = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["name"]

    def __str__(self):
        return f"{self.name} ({'on' if self.enabled else 'off'})"
