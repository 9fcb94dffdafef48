import zoneinfo

from django import forms
from django.conf import settings
from django.contrib.auth.forms import UserCreationForm

from accounts.models import User
from chat.llm.registry import AUTO, model_for, models_offered


class SignUpForm(UserCreationForm):
    class Meta(UserCreationForm.Meta):
        model = User
        fields = ("username",)


class UserSettingsForm(forms.ModelForm):
    """A user's defaults: the model and system prompt new conversations start with, and their time zone."""

    default_model = forms.ChoiceField(required=False, help_text="The model new conversations start with.")
    system_prompt = forms.CharField(
        required=False, max_length=100_000, widget=forms.Textarea(attrs={"rows": 8}),
        help_text="New conversations start with it; each conversation can change its own from the chat header.",
    )
    time_zone = forms.ChoiceField(help_text="Where you are: the current_time tool answers in this time zone.")

    class Meta:
        model = User
        fields = ("default_model", "system_prompt", "time_zone")

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        site_default = model_for(settings.CHAT_DEFAULT_MODEL).display_name
        self.fields["default_model"].choices = [
            ("", f"Site default ({site_default})"),
            (AUTO, "Auto: picked for each message"),
            *((spec.id, spec.display_name) for spec in models_offered()),
        ]
        self.fields["time_zone"].choices = [(name, name) for name in sorted(zoneinfo.available_timezones())]

    def clean_time_zone(self):
        """The choices are the system's zones; ZoneInfo must also load the one picked."""
        name = self.cleaned_data["time_zone"]
        try:
            zoneinfo.ZoneInfo(name)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            raise forms.ValidationError("Unknown time zone.") from None
        return name
