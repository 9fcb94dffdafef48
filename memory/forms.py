from django import forms


class MemoryFileForm(forms.Form):
    # Bytes are checked by memory/services.py (MEMORY_MAX_FILE_BYTES); this bounds what the form reads first.
    content = forms.CharField(
        required=False, strip=False, max_length=200_000, widget=forms.Textarea(attrs={"rows": 16}),
    )


class MemorySwitchForm(forms.Form):
    memory_enabled = forms.BooleanField(
        required=False, label="Let Claude keep a memory",
        help_text="Claude may read and write the files below in every conversation, to remember what you ask it to.",
    )
