from django import forms

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
