"""The settings page's Memory section: the user's memory files (memory/models.py), to read, edit and delete, and
their switch for the memory tool. Every view is the owner's: another user's file is a 404."""

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods, require_POST

from accounts.models import User
from chat.models import ToolSetting
from memory import selectors, services
from memory.forms import MemoryFileForm, MemorySwitchForm
from memory.paths import MemoryRefused


@login_required
def memory_list(request):
    return render(request, "memory/memory_list.html", {
        "files": selectors.memory_files(request.user.pk),
        "switch_form": MemorySwitchForm(initial={"memory_enabled": request.user.memory_enabled}),
        "admin_enabled": ToolSetting.objects.filter(name="memory", enabled=True).exists(),
    })


@login_required
@require_POST
def memory_switch(request):
    form = MemorySwitchForm(request.POST)
    form.is_valid()  # a BooleanField that may be absent: always valid
    User.objects.filter(pk=request.user.pk).update(memory_enabled=form.cleaned_data["memory_enabled"])
    messages.success(request, "Memory is on." if form.cleaned_data["memory_enabled"] else "Memory is off.")
    return redirect("memory_list")


@login_required
@require_http_methods(["GET", "POST"])
def memory_file_edit(request, file_id: int):
    memory_file = selectors.memory_file_for_user(request.user, file_id)
    form = MemoryFileForm(request.POST or None, initial={"content": memory_file.content})
    if request.method == "POST" and form.is_valid():
        try:
            services.memory_file_write(memory_file=memory_file, content=form.cleaned_data["content"])
        except MemoryRefused as refusal:
            form.add_error("content", str(refusal))
        else:
            messages.success(request, f"Saved {memory_file.path}.")
            return redirect("memory_list")
    return render(request, "memory/memory_file.html", {"memory_file": memory_file, "form": form})


@login_required
@require_POST
def memory_file_delete(request, file_id: int):
    memory_file = selectors.memory_file_for_user(request.user, file_id)
    services.memory_file_delete(memory_file=memory_file)
    messages.success(request, f"Deleted {memory_file.path}.")
    return redirect("memory_list")
