"""URLs: the API at the root (no version prefix: docs/api.md), the schema and docs, and the admin."""

from django.contrib import admin
from django.urls import include, path, re_path
from drf_spectacular.views import SpectacularAPIView, SpectacularJSONAPIView, SpectacularSwaggerView

from config.api.errors import not_found_view, server_error_view

# The admin's "View site": this site's front page is the API's docs (``/`` is a JSON 404).
admin.site.site_url = "/docs"

urlpatterns = [
    path("", include("projects.api.urls")),
    path("", include("workspaces.api.urls")),
    path("", include("accounts.api.urls")),
    path("openapi.json", SpectacularJSONAPIView.as_view(), name="schema-json"),
    path("openapi.yaml", SpectacularAPIView.as_view(), name="schema-yaml"),
    path("docs", SpectacularSwaggerView.as_view(url_name="schema-json"), name="docs"),
    path("admin/", admin.site.urls),
    # Anything else outside the admin is an unknown endpoint: our JSON 404, whatever DEBUG says.
    re_path(r"^(?!admin/|static/)", not_found_view),
]

handler404 = not_found_view
handler500 = server_error_view
