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
    path("projects/<str:id>/invitations", views.ProjectInvitationsView.as_view(), name="project-invitations"),
    path(
        "projects/<str:id>/invitations/<str:invitation_id>",
        views.ProjectInvitationDetailView.as_view(),
        name="project-invitation-detail",
    ),
    path("invitations", views.InvitationListView.as_view(), name="invitation-list"),
    path(
        "invitations/<str:invitation_id>/accept",
        views.InvitationAcceptView.as_view(),
        name="invitation-accept",
    ),
    path(
        "invitations/<str:invitation_id>/decline",
        views.InvitationDeclineView.as_view(),
        name="invitation-decline",
    ),
]
