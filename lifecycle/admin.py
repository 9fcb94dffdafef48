from django import forms
from django.contrib import admin, messages
from django.template.response import TemplateResponse
from django.utils.formats import date_format

from chat.admin import SystemRecordAdmin
from chat.llm import registry
from lifecycle import selectors, services
from lifecycle.models import ModelLifecycle, RetirementNotice


class ModelLifecycleForm(forms.ModelForm):
    class Meta:
        model = ModelLifecycle
        fields = ("model", "deprecated_on", "retires_on", "successor", "notes")

    def clean_successor(self):
        """A typo here would move every conversation on the model to one that answers nothing: the successor
        must be a model on offer (so never a retired one)."""
        successor = self.cleaned_data["successor"]
        if successor and not registry.model_offered(successor):
            raise forms.ValidationError(f"{successor} is not a model on offer here.")
        return successor


@admin.register(ModelLifecycle)
class ModelLifecycleAdmin(admin.ModelAdmin):
    """The lifecycle table. Saving a row here marks it `admin`, and the Models API's refreshes leave such a row
    alone from then on; "Let the Models API update" hands it back."""

    form = ModelLifecycleForm

    list_display = ("model", "deprecated_on", "retires_on", "state", "successor", "source", "updated_at")
    list_filter = ("source",)
    search_fields = ("model", "successor")
    readonly_fields = ("source", "updated_at")
    fields = ("model", "deprecated_on", "retires_on", "successor", "notes", "source", "updated_at")
    actions = ("move_to_successor", "let_api_update")

    @admin.display(description="state")
    def state(self, row):
        if row.retired():
            return "Retired"
        return "Deprecated" if row.deprecated() else "Active"

    def save_model(self, request, obj, form, change):
        obj.source = ModelLifecycle.Source.ADMIN
        super().save_model(request, obj, form, change)

    @admin.action(description="Move conversations and defaults to the successor", permissions=["change"])
    def move_to_successor(self, request, queryset):
        """First a page that says how many conversations and defaults each model would move; moved once it is
        confirmed."""
        rows = list(queryset)
        # A successor retired since it was set (or never set) would strand the conversations moved to it.
        without = [row.model for row in rows if not (row.successor and registry.model_offered(row.successor))]
        rows = [row for row in rows if row.model not in without]
        if without:
            self.message_user(
                request, f"No successor on offer, nothing moved: {', '.join(without)}.", messages.WARNING
            )
        if not rows:
            return None
        if request.POST.get("confirmed") != "yes":
            moves = [(row, *selectors.model_usage(row.model)) for row in rows]
            return TemplateResponse(request, "lifecycle/admin/move_confirm.html", {
                **self.admin_site.each_context(request), "title": "Move to the successor", "moves": moves,
                "opts": self.model._meta, "action": "move_to_successor",
                "action_checkbox_name": admin.helpers.ACTION_CHECKBOX_NAME,
            })
        for row in rows:
            moved = services.models_move(lifecycle=row, actor=request.user, request=request)
            self.message_user(
                request, f"{row.model} → {row.successor}: {moved.conversations} conversations and "
                f"{moved.defaults} user defaults moved.", messages.SUCCESS,
            )
        return None

    @admin.action(description="Let the Models API update these again", permissions=["change"])
    def let_api_update(self, request, queryset):
        handed = queryset.filter(source=ModelLifecycle.Source.ADMIN).update(source=ModelLifecycle.Source.MODELS_API)
        selectors.lifecycles_forget()
        self.message_user(request, f"{handed} rows will follow the Models API again.", messages.SUCCESS)


@admin.register(RetirementNotice)
class RetirementNoticeAdmin(SystemRecordAdmin):
    list_display = ("model", "retires_on", "days_before", "conversations", "defaults", "recipients", "sent")
    list_filter = ("model",)

    @admin.display(description="sent at", ordering="sent_at")
    def sent(self, notice):
        return date_format(notice.sent_at, "Y-m-d H:i")
