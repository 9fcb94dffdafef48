from django import forms

from projects.models import Project, ProjectMember
from teams.forms import MemberAddForm


class ProjectCreateForm(forms.ModelForm):
    class Meta:
        model = Project
        fields = ("name",)


class ProjectForm(forms.ModelForm):
    instructions = forms.CharField(
        required=False, max_length=100_000, widget=forms.Textarea(attrs={"rows": 10}),
        help_text="Sent, cached, at the start of every conversation in the project, before its own system prompt.",
    )

    class Meta:
        model = Project
        fields = ("name", "instructions")


class ProjectMemberForm(MemberAddForm):
    """Whom to share the project with: an account found as the group pages find one (`clean_who`)."""

    who = forms.CharField(
        label="Username or email", max_length=254, help_text="Someone who already has an account here.",
    )
    role = None
    access = forms.ChoiceField(choices=ProjectMember.Access.choices, initial=ProjectMember.Access.READ)


class ConversationProjectForm(forms.Form):
    project = forms.IntegerField(required=False, min_value=1, help_text="Empty: out of any project.")
