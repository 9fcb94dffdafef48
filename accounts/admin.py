from django import forms
from django.contrib import admin, messages
from django.contrib.auth.admin import UserAdmin as BaseUserAdmin
from django.shortcuts import redirect

from accounts import services
from accounts.models import Invite, RegistrationPolicy, User
from accounts.registration import registration_policy
from audit.services import audit_record
from billing import selectors as billing_selectors


@admin.register(User)
class UserAdmin(BaseUserAdmin):
    fieldsets = BaseUserAdmin.fieldsets + (
        ("Chat", {"fields": ("default_model", "system_prompt")}),
        (
            "Budget and limits",
            {
                "fields": ("spend_this_month", "monthly_budget", "monthly_cap", "rate_limit_requests_per_minute",
                           "rate_limit_tokens_per_minute"),
                "description": "Empty fields follow the site defaults (CHAT_DEFAULT_MONTHLY_BUDGET, "
                               "CHAT_RATE_LIMIT_REQUESTS_PER_MINUTE, CHAT_RATE_LIMIT_TOKENS_PER_MINUTE).",
            },
        ),
    )
    # An address on creation, so the new user can reset their password instead of being sent one.
    add_fieldsets = (
        (None, {"classes": ("wide",), "fields": ("username", "email", "usable_password", "password1", "password2")}),
    )
    readonly_fields = ("spend_this_month",)

    @admin.display(description="spend this month")
    def spend_this_month(self, user):
        """The ledger's total since the first of the month (UTC), against the budget in force for this user."""
        status = billing_selectors.budget_status(user)
        if status.budget is None:
            return f"${status.spent:,.4f} (no budget)"
        return f"${status.spent:,.4f} of ${status.budget:,.2f} ({status.percent}%)"


@admin.register(RegistrationPolicy)
class RegistrationPolicyAdmin(admin.ModelAdmin):
    """One row: the list opens it. Only superusers change it; every change is audited."""

    fields = ("mode", "domains", "updated_at")
    readonly_fields = ("updated_at",)

    def changelist_view(self, request, extra_context=None):
        return redirect("admin:accounts_registrationpolicy_change", registration_policy().pk)

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return request.user.is_superuser

    def save_model(self, request, obj, form, change):
        previous = RegistrationPolicy.objects.get(pk=obj.pk)
        super().save_model(request, obj, form, change)
        if form.changed_data:
            audit_record(
                actor=request.user, action="registration.changed", subject=obj.mode, request=request,
                detail={"mode": obj.mode, "previous_mode": previous.mode, "domains": obj.domain_list,
                        "previous_domains": previous.domain_list},
            )


class InviteAddForm(forms.ModelForm):
    days = forms.IntegerField(min_value=1, max_value=90, initial=7, help_text="The link stops working after this.")

    class Meta:
        model = Invite
        fields = ("email", "team", "role")


@admin.register(Invite)
class InviteAdmin(admin.ModelAdmin):
    """Invites are made here or by group managers on their pages; never edited, only revoked."""

    list_display = ("created_at", "email", "team", "role", "status", "created_by", "expires_at", "used_by")
    list_select_related = ("team", "created_by", "used_by")
    list_filter = ("role", "team")
    search_fields = ("email", "created_by__username", "used_by__username")
    readonly_fields = ("link", "status", "email", "team", "role", "created_by", "created_at", "expires_at",
                       "used_at", "used_by", "revoked_at")
    actions = ("revoke",)

    def get_form(self, request, obj=None, **kwargs):
        if obj is None:
            kwargs["form"] = InviteAddForm
        return super().get_form(request, obj, **kwargs)

    def get_fields(self, request, obj=None):
        return ("email", "team", "role", "days") if obj is None else self.readonly_fields

    def get_readonly_fields(self, request, obj=None):
        return () if obj is None else self.readonly_fields

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    @admin.display(description="sign-up link")
    def link(self, invite):
        return invite.url

    def save_model(self, request, obj, form, change):
        """Through the service, which audits it; the admin then shows that row, and the link to send."""
        invite = services.invite_create(
            created_by=request.user, team=obj.team, role=obj.role, email=obj.email,
            days=form.cleaned_data["days"], request=request,
        )
        obj.pk = invite.pk
        obj.refresh_from_db()
        self.message_user(
            request, f"Send this link (it works once, until {invite.expires_at:%Y-%m-%d %H:%M} UTC): "
            f"{request.build_absolute_uri(invite.url)}",
        )

    @admin.action(description="Revoke the selected invites")
    def revoke(self, request, queryset):
        open_invites = [invite for invite in queryset if invite.is_usable]
        for invite in open_invites:
            services.invite_revoke(invite=invite, by=request.user, request=request)
        self.message_user(request, f"Revoked {len(open_invites)} invite(s).", messages.SUCCESS)
