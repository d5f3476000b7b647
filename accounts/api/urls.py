from django.urls import path
from rest_framework.routers import SimpleRouter

from accounts.api import views

# No trailing slash in the routes: config.operations.middleware.StripTrailingSlashMiddleware takes one off first.
router = SimpleRouter(trailing_slash=False)
router.register("auth/tokens", views.ApiTokenViewSet, basename="auth-token")

# Settings and profile exist once per caller: one URL without an id, which a router's list/detail
# routes do not describe, so their viewsets are bound to it here.
urlpatterns = [
    path(
        "user/settings",
        views.UserSettingsViewSet.as_view({"get": "retrieve", "patch": "partial_update", "put": "update"}),
        name="user-settings",
    ),
    path("profile", views.ProfileViewSet.as_view({"get": "retrieve"}), name="profile"),
    *router.urls,
]
