from django.conf import settings
from django.contrib import messages
from django.contrib.auth import login
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_required
from django.contrib.auth.forms import SetPasswordForm
from django.http import HttpResponse, HttpResponseBadRequest
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods, require_POST

from accounts import services
from accounts.forms import PasswordResetForm, SignUpForm, ThemeForm, TimeZoneAnswerForm, UserSettingsForm
from accounts.mail import account_mail_allowed
from accounts.models import Invite, RegistrationPolicy, User
from accounts.registration import registration_policy
from apikeys.views import api_keys_context
from audit.services import audit_record
from config.origins import redirect_next

# What the sign-up page says when its form is not offered: these modes take no sign-ups without an invite.
SIGN_UP_CLOSED = {
    RegistrationPolicy.Mode.CLOSED: "Sign-up is closed on this site. Ask an admin for an invite.",
    RegistrationPolicy.Mode.INVITE: "Sign-up here is by invitation: open the invite link you were sent, or ask an "
    "admin or your group's manager for one.",
}

# Without EMAIL_URL (`make run`) mail goes to the server's terminal, and the page says where to look.
CONSOLE_EMAIL_BACKEND = "django.core.mail.backends.console.EmailBackend"


@require_http_methods(["GET", "POST"])
def sign_up(request):
    if request.user.is_authenticated:
        return redirect("home")
    policy = registration_policy()
    if policy.mode in SIGN_UP_CLOSED:
        status = 403 if request.method == "POST" else 200
        return render(request, "accounts/sign_up.html", {"closed": SIGN_UP_CLOSED[policy.mode]}, status=status)
    domains = policy.domain_list if policy.mode == RegistrationPolicy.Mode.DOMAINS else None
    return sign_up_form(request, invite=None, domains=domains)


@require_http_methods(["GET", "POST"])
def sign_up_invite(request, token):
    """An invite link works in every mode, until it is used, expires or is revoked. Someone already signed in
    who opens a group's invite is offered to join the group (teams' join page) instead."""
    if request.user.is_authenticated:
        if Invite.objects.filter(token=token, team__isnull=False).exists():
            return redirect("team_join", token=token)
        return redirect("home")
    invite = Invite.objects.select_related("team").filter(token=token).first()
    if invite is None or not invite.is_usable:
        return render(request, "accounts/sign_up.html", {"closed": services.INVITE_UNUSABLE}, status=404)
    return sign_up_form(request, invite=invite, domains=None)


def sign_up_form(request, *, invite, domains):
    form = SignUpForm(request.POST or None, invite=invite)
    if request.method == "POST" and form.is_valid():
        services.sign_up_request(**form.cleaned_data, invite=invite, request=request)
        return render(request, "accounts/sign_up_sent.html", {
            "email": form.cleaned_data["email"], "mail_printed": settings.EMAIL_BACKEND == CONSOLE_EMAIL_BACKEND,
        })
    return render(request, "accounts/sign_up.html", {"form": form, "invite": invite, "domains": domains})


@require_http_methods(["GET", "POST"])
def sign_up_confirm(request, token):
    """The emailed link: the address is proven; the visitor chooses a password and the account is created."""
    if request.user.is_authenticated:
        return redirect("home")
    try:
        pending = services.sign_up_pending(token)
    except services.SignUpRefused as refusal:
        return render(request, "accounts/sign_up_confirm.html", {"refused": str(refusal)}, status=400)
    form = SetPasswordForm(User(username=pending["username"], email=pending["email"]), request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            user = services.sign_up_complete(
                pending=pending, password=form.cleaned_data["new_password1"], request=request,
            )
        except services.SignUpRefused as refusal:
            return render(request, "accounts/sign_up_confirm.html", {"refused": str(refusal)}, status=400)
        login(request, user, backend="django.contrib.auth.backends.ModelBackend")
        return redirect("home")
    return render(request, "accounts/sign_up_confirm.html", {"form": form, "username": pending["username"]})


class PasswordResetView(auth_views.PasswordResetView):
    """Django's: the next page says the same whether or not an account has the address, and comes as soon
    whether or not a message goes out (the form mails from a thread). Past the email limits nothing is sent,
    and the page still says the same."""

    form_class = PasswordResetForm

    def form_valid(self, form):
        email = form.cleaned_data["email"]
        accounts = sum(1 for _ in form.get_users(email))
        audit_record(
            actor=None, action="password_reset.requested", subject=email, detail={"accounts": accounts},
            request=self.request,
        )
        if not account_mail_allowed(address=email, request=self.request, purpose="password reset"):
            return redirect(self.get_success_url())
        return super().form_valid(form)


class PasswordResetConfirmView(auth_views.PasswordResetConfirmView):
    def form_valid(self, form):
        response = super().form_valid(form)
        services.password_reset_done(user=form.user, request=self.request)
        return response


class PasswordChangeView(auth_views.PasswordChangeView):
    def form_valid(self, form):
        response = super().form_valid(form)
        audit_record(actor=form.user, action="password.changed", subject=form.user.username, request=self.request)
        return response


@login_required
@require_http_methods(["GET", "POST"])
def user_settings(request):
    form = UserSettingsForm(request.POST or None, instance=request.user)
    if request.method == "POST" and form.is_valid():
        services.user_settings_update(user=request.user, **form.cleaned_data, request=request)
        messages.success(request, "Settings saved.")
        return redirect("user_settings")
    return render(request, "accounts/settings.html", {"form": form, **api_keys_context(request.user)})


@login_required
@require_POST
def theme_set(request):
    """The sidebar's switch: saves the choice. Asked by fetch (static/chat/theme.js, which restyles the page in
    place, keeping an unsent draft) it answers 204; the plain form, without script, goes back to `next`
    (config.origins.redirect_next), where the server renders the page in it."""
    form = ThemeForm(request.POST)
    if not form.is_valid():
        return HttpResponseBadRequest("`theme` must be light, dark or empty.", content_type="text/plain")
    services.user_theme_set(user=request.user, theme=form.cleaned_data["theme"])
    if request.headers.get("X-Requested-With") == "fetch":
        return HttpResponse(status=204)  # static/chat/theme.js changed the page in place
    return redirect_next(request)


@login_required
@require_POST
def time_zone_answer(request):
    """The chat page's banner (templates/chat/_time_zone_banner.html): "Use it" posts the browser's zone,
    "Keep" the saved one; either answers for good. The zone comes from the browser, so it is checked against
    the system's zones, and anything else is a 400 that saves nothing. Asked by fetch (static/chat/timezone.js)
    it answers 204; the plain form goes back to `next` (config.origins.redirect_next)."""
    form = TimeZoneAnswerForm(request.POST)
    if not form.is_valid():
        return HttpResponseBadRequest("Unknown time zone.", content_type="text/plain; charset=utf-8")
    services.user_time_zone_answer(user=request.user, time_zone=form.cleaned_data["time_zone"])
    if request.headers.get("X-Requested-With") == "fetch":
        return HttpResponse(status=204)  # static/chat/timezone.js hides the banner
    return redirect_next(request)
