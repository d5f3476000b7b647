from django.urls import path

from projects.api import views

urlpatterns = [
    path("projects", views.ProjectListView.as_view(), name="project-list"),
    path("projects/<str:id>", views.ProjectDetailView.as_view(), name="project-detail"),
    path("projects/<str:id>/members", views.ProjectMembersView.as_view(), name="project-members"),
    path(
        "projects/<str:id>/members/<str:user_id>",
        views.ProjectMemberDetailView.as_view(),
        name="project-member-detail",
    ),
]
