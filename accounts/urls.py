from django.contrib.auth import views as auth_views
from django.urls import path

from accounts import views

urlpatterns = [
    path("signup/", views.sign_up, name="sign_up"),
    path("signup/invite/<str:token>/", views.sign_up_invite, name="sign_up_invite"),
    path("signup/confirm/<str:token>/", views.sign_up_confirm, name="sign_up_confirm"),
    path("login/", auth_views.LoginView.as_view(template_name="accounts/login.html"), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("settings/", views.user_settings, name="user_settings"),
    path("theme/", views.theme_set, name="theme_set"),
    path("settings/time-zone/", views.time_zone_answer, name="time_zone_answer"),
    # Django's password views under their own names, which their success URLs and emails reverse.
    path("password/change/", views.PasswordChangeView.as_view(), name="password_change"),
    path("password/change/done/", auth_views.PasswordChangeDoneView.as_view(), name="password_change_done"),
    path("password/reset/", views.PasswordResetView.as_view(), name="password_reset"),
    path("password/reset/sent/", auth_views.PasswordResetDoneView.as_view(), name="password_reset_done"),
    path(
        "password/reset/<uidb64>/<token>/", views.PasswordResetConfirmView.as_view(), name="password_reset_confirm",
    ),
    path("password/reset/done/", auth_views.PasswordResetCompleteView.as_view(), name="password_reset_complete"),
]
