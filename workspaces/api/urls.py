from django.urls import path

from workspaces.api import views
from workspaces.api.heartbeat import WorkspaceHeartbeatView

urlpatterns = [
    path("projects/<str:id>/workspaces", views.ProjectWorkspacesView.as_view(), name="project-workspaces"),
    path("workspaces", views.WorkspaceListView.as_view(), name="workspace-list"),
    path("workspaces/<str:id>", views.WorkspaceDetailView.as_view(), name="workspace-detail"),
    path("workspaces/<str:id>/start", views.WorkspaceStartView.as_view(), name="workspace-start"),
    path("workspaces/<str:id>/stop", views.WorkspaceStopView.as_view(), name="workspace-stop"),
    path("workspaces/<str:id>/events", views.WorkspaceEventsView.as_view(), name="workspace-events"),
    path("workspaces/<str:id>/heartbeat", WorkspaceHeartbeatView.as_view(), name="workspace-heartbeat"),
]
