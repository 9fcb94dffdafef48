from django.urls import path

from teams import views

urlpatterns = [
    path("", views.team_list, name="team_list"),
    path("join/<str:token>/", views.team_join, name="team_join"),
    path("<int:team_id>/", views.team_detail, name="team_detail"),
    path("<int:team_id>/usage.csv", views.team_usage_csv, name="team_usage_csv"),
    path("<int:team_id>/cache/", views.team_cache, name="team_cache"),
    path("<int:team_id>/cache.csv", views.team_cache_csv, name="team_cache_csv"),
    path("<int:team_id>/members/", views.team_member_add, name="team_member_add"),
    path("<int:team_id>/members/<int:membership_id>/role/", views.team_member_role, name="team_member_role"),
    path("<int:team_id>/members/<int:membership_id>/remove/", views.team_member_remove,
         name="team_member_remove"),
    path("<int:team_id>/budget/", views.team_budget, name="team_budget"),
    path("<int:team_id>/invites/", views.team_invite_create, name="team_invite_create"),
    path("<int:team_id>/invites/<int:invite_id>/revoke/", views.team_invite_revoke,
         name="team_invite_revoke"),
]
