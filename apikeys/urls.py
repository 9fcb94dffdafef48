from django.urls import path, re_path

from apikeys import views
from apikeys.errors import API_PREFIX

# The Anthropic-compatible API: a client's base URL is http(s)://<host>/api/anthropic.
API = API_PREFIX.lstrip("/")

urlpatterns = [
    path(f"{API}v1/messages", views.messages_create, name="api_messages"),
    path(f"{API}v1/messages/count_tokens", views.count_tokens, name="api_count_tokens"),
    path(f"{API}v1/models", views.models_list, name="api_models"),
    path(f"{API}v1/models/<str:model_id>", views.model_detail, name="api_model"),
    # Any other path under the prefix (the Batches or Files API, say) is not served: 404 in the API's shape.
    re_path(f"^{API}", views.not_served),
    path("accounts/settings/api-keys/", views.api_key_create, name="api_key_create"),
    path("accounts/settings/api-keys/<int:key_id>/revoke/", views.api_key_revoke, name="api_key_revoke"),
]
