from django.urls import path

from workspaces.api import views

urlpatterns = [
    path("projects/<str:id>/workspaces", views.ProjectWorkspacesView.as_view(), name="project-workspaces"),
    path("workspaces/<str:id>", views.WorkspaceDetailView.as_view(), name="workspace-detail"),
]
