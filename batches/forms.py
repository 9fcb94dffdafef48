from django import forms
from django.conf import settings

from chat.inbound import MAX_ROW_ID
from chat.llm.registry import models_offered


class BulkForm(forms.Form):
    """The same question of each of several files (already uploaded through POST /attachments/)."""

    question = forms.CharField(max_length=100_000, widget=forms.Textarea(attrs={"rows": 4}))
    model = forms.ChoiceField()
    attachments = forms.TypedMultipleChoiceField(coerce=int, required=True, choices=())
    per_file_conversations = forms.BooleanField(
        required=False, label="One conversation per file",
        help_text="Each file becomes a conversation with the question and its answer. Otherwise: a table only.",
    )

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["model"].choices = [(spec.id, spec.display_name) for spec in models_offered()]

    def clean_attachments(self):
        """Ids only (ownership is checked with the budget, in one transaction), at most BATCH_BULK_MAX_FILES."""
        ids = self.cleaned_data["attachments"]
        if len(ids) > settings.BATCH_BULK_MAX_FILES:
            raise forms.ValidationError(f"At most {settings.BATCH_BULK_MAX_FILES} files at a time.")
        return ids

    def full_clean(self):
        # Any positive row id is a choice; which are the user's is the service's check.
        if self.is_bound:
            raw = self.data.getlist("attachments") if hasattr(self.data, "getlist") else []
            self.fields["attachments"].choices = [
                (value, value) for value in raw if value.isdigit() and 0 < int(value) <= MAX_ROW_ID
            ]
        super().full_clean()
