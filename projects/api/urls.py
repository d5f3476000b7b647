from rest_framework.routers import SimpleRouter

from projects.api import views

# No trailing slash in the routes: config.operations.middleware.StripTrailingSlashMiddleware takes one off first.
router = SimpleRouter(trailing_slash=False)
router.register("projects", views.ProjectViewSet, basename="project")
router.register(r"projects/(?P<id>[^/]+)/members", views.ProjectMemberViewSet, basename="project-member")
router.register(
    r"projects/(?P<id>[^/]+)/invitations", views.ProjectInvitationViewSet, basename="project-invitation"
)
router.register("invitations", views.InvitationViewSet, basename="invitation")

urlpatterns = router.urls
