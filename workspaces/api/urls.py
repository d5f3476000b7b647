"""The workspaces API's URLs: a router for the two viewsets (no trailing slash in the patterns:
StripTrailingSlashMiddleware lets every path work with one too), and the agent's heartbeat."""

from django.urls import path
from rest_framework.routers import SimpleRouter

from workspaces.api import views
from workspaces.api.heartbeat import WorkspaceHeartbeatView

router = SimpleRouter(trailing_slash=False)
router.register(
    r"projects/(?P<id>[^/]+)/workspaces", views.ProjectWorkspaceViewSet, basename="project-workspace"
)
router.register(r"workspaces", views.WorkspaceViewSet, basename="workspace")

urlpatterns = [
    *router.urls,
    path("workspaces/<str:id>/heartbeat", WorkspaceHeartbeatView.as_view(), name="workspace-heartbeat"),
]
