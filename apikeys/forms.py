from datetime import datetime, time

from django import forms
from django.utils import timezone


class ApiKeyForm(forms.Form):
    """A new key: a name to tell it apart, and optionally the day it stops working and its own monthly cap."""

    # The settings page's own form has a monthly_cap too: the prefix keeps the fields' names and ids apart.
    prefix = "key"

    name = forms.CharField(max_length=100, help_text="What uses it, to tell your keys apart.")
    expires_on = forms.DateField(
        required=False, widget=forms.DateInput(attrs={"type": "date"}), label="Expires on",
        help_text="It stops working at the start of this day (your time zone). Empty: it does not expire.",
    )
    monthly_cap = forms.DecimalField(
        label="Monthly cap ($)", required=False, min_value=0, max_digits=10, decimal_places=2,
        help_text="What calls with this key may spend per calendar month, within your own budget. Empty: no cap.",
    )

    def clean_expires_on(self):
        day = self.cleaned_data["expires_on"]
        if day is not None and day <= timezone.localdate():
            raise forms.ValidationError("Choose a day after today.")
        return day

    def expires_at(self) -> datetime | None:
        day = self.cleaned_data["expires_on"]
        return None if day is None else timezone.make_aware(datetime.combine(day, time.min))
