from django import forms
from django.contrib.auth import get_user_model
from django.db.models import Q

from teams.models import Membership, Team


class MemberAddForm(forms.Form):
    who = forms.CharField(
        label="Username or email", max_length=254,
        help_text="Someone who already has an account here; invite anyone else below.",
    )
    role = forms.ChoiceField(choices=Membership.Role.choices, initial=Membership.Role.MEMBER)

    def clean_who(self):
        """The active account with this username or address (either case)."""
        who = self.cleaned_data["who"].strip()
        users = get_user_model().objects.filter(is_active=True)
        user = users.filter(Q(username__iexact=who) | Q(email__iexact=who)).first()
        if user is None:
            raise forms.ValidationError("No account has this username or email address.")
        return user


class MemberRoleForm(forms.Form):
    role = forms.ChoiceField(choices=Membership.Role.choices)


class TeamBudgetForm(forms.Form):
    """Not a ModelForm: validating one writes the new value into the group it edits, and the service compares
    old and new to audit the change."""

    monthly_budget = Team._meta.get_field("monthly_budget").formfield(
        label="Monthly budget (dollars)", min_value=0,
    )


class InviteForm(forms.Form):
    email = forms.EmailField(
        required=False, help_text="Optional: whom the link is for. Anyone with the link can use it, once.",
    )
    role = forms.ChoiceField(choices=Membership.Role.choices, initial=Membership.Role.MEMBER)
