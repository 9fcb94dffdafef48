import re

from django import forms
from django.contrib.auth import get_user_model
from django.db.models import Q

from shares.models import Share

MAX_RECIPIENTS = 50


class ShareForm(forms.Form):
    audience = forms.ChoiceField(choices=Share.Audience.choices, initial=Share.Audience.USERS, label="Who can open it")
    mode = forms.ChoiceField(choices=Share.Mode.choices, initial=Share.Mode.SNAPSHOT, label="What they see")
    recipients = forms.CharField(
        required=False, label="Share with", max_length=2000,
        widget=forms.Textarea(attrs={"rows": 2}),
        help_text="Usernames or email addresses of people with an account here, separated by commas or spaces. "
                  "They find it under “Shared with me”.",
    )

    def __init__(self, *args, public_allowed: bool, **kwargs):
        """Public links are offered only while the site's share policy allows them."""
        super().__init__(*args, **kwargs)
        if not public_allowed:
            self.fields["audience"].choices = [
                choice for choice in Share.Audience.choices if choice[0] != Share.Audience.PUBLIC
            ]

    def clean_recipients(self) -> list:
        """The active accounts named (by username or address, either case); every name must be one."""
        names = list(dict.fromkeys(name for name in re.split(r"[\s,;]+", self.cleaned_data["recipients"]) if name))
        if len(names) > MAX_RECIPIENTS:
            raise forms.ValidationError(f"Share with at most {MAX_RECIPIENTS} people at once.")
        named = Q(pk__in=[])
        for name in names:
            named |= Q(username__iexact=name) | Q(email__iexact=name)
        users = list(get_user_model().objects.filter(named, is_active=True))
        found, unknown = [], []
        for name in names:
            match = [user for user in users if name.casefold() in (user.username.casefold(), user.email.casefold())]
            if not match:
                unknown.append(name)
            elif match[0] not in found:
                found.append(match[0])
        if unknown:
            raise forms.ValidationError(f"No account here has the username or email address: {', '.join(unknown)}.")
        return found

    def clean(self):
        cleaned = super().clean()
        if cleaned.get("audience") == Share.Audience.USERS and not cleaned.get("recipients") and not self.errors:
            self.add_error("recipients", "Name at least one person to share with.")
        return cleaned
