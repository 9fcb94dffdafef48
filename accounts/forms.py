import functools
import zoneinfo

from django import forms
from django.conf import settings
from django.contrib.auth import forms as auth_forms
from django.contrib.auth.validators import UnicodeUsernameValidator
from django.core.mail import EmailMultiAlternatives
from django.template.loader import render_to_string

from accounts.countries import COUNTRIES
from accounts.mail import mail_send_later
from accounts.models import Theme, User
from accounts.registration import registration_policy, sign_up_allowed
from chat.llm.registry import AUTO, model_for, models_offered
from chat.models import ThinkingLevel


class SignUpForm(forms.Form):
    """The first step: a username and an address. The password is chosen on the page the emailed link opens,
    so no password waits anywhere for an address to be confirmed."""

    username = forms.CharField(
        max_length=150, validators=[UnicodeUsernameValidator()],
        help_text="Letters, digits and @/./+/-/_ only, up to 150 characters.",
    )
    email = forms.EmailField(label="Email address", help_text="We send a link to it to finish signing up.")

    def __init__(self, *args, invite=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.invite = invite
        if invite is not None and invite.email:
            self.fields["email"].initial = invite.email

    def clean_email(self):
        email = self.cleaned_data["email"].strip()
        if not sign_up_allowed(email=email, invite=self.invite):
            if self.invite is not None:
                raise forms.ValidationError("This invite is for another email address.")
            domains = ", ".join(registration_policy().domain_list) or "no domain yet"
            raise forms.ValidationError(f"Sign-up here is open to email addresses at {domains} only.")
        return email


class PasswordResetForm(auth_forms.PasswordResetForm):
    """Django's, its message sent from a thread (accounts/mail.py): on the request path, the time an SMTP
    server takes to accept it told a visitor that an account has the address."""

    def send_mail(self, subject_template_name, email_template_name, context, from_email, to_email,
                  html_email_template_name=None):
        subject = "".join(render_to_string(subject_template_name, context).splitlines())
        message = EmailMultiAlternatives(subject, render_to_string(email_template_name, context), from_email, [to_email])
        if html_email_template_name is not None:
            message.attach_alternative(render_to_string(html_email_template_name, context), "text/html")
        mail_send_later(message)


class UserSettingsForm(forms.ModelForm):
    """A user's defaults: the model and system prompt new conversations start with, and their time zone."""

    default_model = forms.ChoiceField(required=False, help_text="The model new conversations start with.")
    system_prompt = forms.CharField(
        required=False, max_length=100_000, widget=forms.Textarea(attrs={"rows": 8}),
        help_text="New conversations start with it; each conversation can change its own from the chat header.",
    )
    time_zone = forms.ChoiceField(help_text="Where you are: the current_time tool answers in this time zone.")
    monthly_cap = forms.DecimalField(
        label="Your own monthly cap ($)", required=False, min_value=0, max_digits=10, decimal_places=2,
        help_text="It can only lower your budget, never raise it: you can spend up to whichever is lower. "
        "Empty: no cap of your own. 0: nothing may be spent.",
    )
    # The approximate place web search is told (chat/llm/server_tools.py `user_location`), with the time zone.
    location_country = forms.ChoiceField(
        label="Country", required=False, choices=[("", "Not given"), *COUNTRIES],
        help_text="With the city and region: where web search looks for local results. Empty says nothing.",
    )

    # Thinking for new conversations; each conversation's Settings dialog shows how its model takes it.
    default_thinking = forms.ChoiceField(
        label="Thinking", choices=ThinkingLevel.choices, required=False,
        help_text="How much new conversations think before they answer: an effort level on models that think "
        "adaptively, a token budget on the others. More thinking helps hard questions and costs output tokens.",
    )

    class Meta:
        model = User
        fields = ("default_model", "default_thinking", "system_prompt", "time_zone", "theme", "monthly_cap",
                  "batch_email",
                  "location_city", "location_region", "location_country")

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        site_default = model_for(settings.CHAT_DEFAULT_MODEL).display_name
        self.fields["default_model"].choices = [
            ("", f"Site default ({site_default})"),
            (AUTO, "Auto: picked for each message"),
            *((spec.id, spec.display_name) for spec in models_offered()),
        ]
        self.fields["time_zone"].choices = [(name, name) for name in sorted(zoneinfo.available_timezones())]
        self.fields["theme"].label = "Appearance"
        self.fields["theme"].help_text = "Light, dark, or your device's. The sidebar has a quick switch too."

    def clean_default_thinking(self):
        """Left out of the form (an older page): the user keeps their default."""
        return self.cleaned_data["default_thinking"] or self.instance.default_thinking

    def clean_time_zone(self):
        """The choices are the system's zones; ZoneInfo must also load the one picked."""
        name = self.cleaned_data["time_zone"]
        try:
            zoneinfo.ZoneInfo(name)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            raise forms.ValidationError("Unknown time zone.") from None
        return name


class ThemeForm(forms.Form):
    """The sidebar's quick switch: one of the three appearances, and the page to go back to."""

    theme = forms.ChoiceField(choices=Theme.choices, required=False)


@functools.cache
def known_time_zones() -> frozenset[str]:
    """The system's IANA zones: read from disk once per process, not on every request."""
    return frozenset(zoneinfo.available_timezones())


class TimeZoneAnswerForm(forms.Form):
    """The chat page's "Use your browser's time zone?" banner: the zone to keep, which the browser filled in
    and so may be anything."""

    time_zone = forms.CharField(max_length=64)

    def clean_time_zone(self):
        name = self.cleaned_data["time_zone"]
        if name not in known_time_zones():
            raise forms.ValidationError("Unknown time zone.")
        return name
