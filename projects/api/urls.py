from django.urls import path

from projects.api import views

urlpatterns = [
    path("projects", views.ProjectListView.as_view(), name="project-list"),
    path("projects/<str:id>", views.ProjectDetailView.as_view(), name="project-detail"),
]
