from django import forms
from django.conf import settings

from chat.attachments.limits import megabytes
from chat.llm.cache_plan import CACHE_TTL_WHY, ttl_advice
from chat.models import CacheTtl, Conversation


class ConversationSettingsForm(forms.ModelForm):
    system_prompt = forms.CharField(
        required=False, max_length=100_000, widget=forms.Textarea(attrs={"rows": 8}),
        help_text="Instructions this conversation's replies follow. Sent with every request, and cached.",
    )

    cache_ttl = forms.ChoiceField(
        choices=CacheTtl.choices, required=False, label="Keep the cache for", help_text=CACHE_TTL_WHY,
        widget=forms.RadioSelect,
    )

    class Meta:
        model = Conversation
        fields = ("system_prompt", "thinking", "cache_ttl")
        help_texts = {
            "thinking": "Let the model think before it answers: better on hard questions, slower and dearer.",
        }

    def __init__(self, *args, turn_gaps=(), **kwargs):
        """`turn_gaps`: the pauses between the conversation's recent turns, for the cache TTL's advice."""
        super().__init__(*args, **kwargs)
        advice = ttl_advice(list(turn_gaps))
        if advice:
            self.fields["cache_ttl"].help_text = f"{CACHE_TTL_WHY} {advice}"

    def clean_cache_ttl(self):
        """Left out of the form (an older page): the conversation keeps its TTL."""
        return self.cleaned_data["cache_ttl"] or self.instance.cache_ttl


class ConversationImportForm(forms.Form):
    file = forms.FileField(
        label="Export file",
        help_text=(
            "A .zip or conversations.json from claude.ai or ChatGPT, or a conversation exported here as JSON."
        ),
    )

    def clean_file(self):
        """The size cap, here too: config/body_limit.py enforces it in front of Django under ASGI only."""
        upload = self.cleaned_data["file"]
        if upload.size > settings.IMPORT_MAX_BYTES:
            limit = megabytes(settings.IMPORT_MAX_BYTES)
            raise forms.ValidationError(f"An import file can be at most {limit}.")
        return upload
