from django import forms
from django.conf import settings

from chat.attachments.limits import megabytes
from chat.models import Conversation


class ConversationSettingsForm(forms.ModelForm):
    system_prompt = forms.CharField(
        required=False, max_length=100_000, widget=forms.Textarea(attrs={"rows": 8}),
        help_text="Instructions this conversation's replies follow. Sent with every request, and cached.",
    )

    class Meta:
        model = Conversation
        fields = ("system_prompt", "thinking")
        help_texts = {
            "thinking": "Let the model think before it answers: better on hard questions, slower and dearer.",
        }


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
