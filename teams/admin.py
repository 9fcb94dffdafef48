from django.contrib import admin

from chat.admin import money_column
from teams.models import Membership, Team


class MembershipInline(admin.TabularInline):
    model = Membership
    extra = 1
    autocomplete_fields = ("user",)


@admin.register(Team)
class TeamAdmin(admin.ModelAdmin):
    """Groups are created and nested here by site admins; their managers run them from the app's group pages
    (/groups/), which also show each group's spend."""

    list_display = ("name", "parent", "budget_shown", "sso_claim_value")
    list_select_related = ("parent",)
    search_fields = ("name", "sso_claim_value")
    autocomplete_fields = ("parent",)
    inlines = (MembershipInline,)
    budget_shown = money_column("monthly_budget", "monthly budget", places=2)


@admin.register(Membership)
class MembershipAdmin(admin.ModelAdmin):
    list_display = ("user", "team", "role", "created_at")
    list_filter = ("role", "team")
    search_fields = ("user__username", "user__email", "team__name")
    list_select_related = ("user", "team")
    autocomplete_fields = ("user", "team")
