from django.urls import path

from accounts.api import views

urlpatterns = [
    path("user/settings", views.UserSettingsView.as_view(), name="user-settings"),
    path("profile", views.ProfileView.as_view(), name="profile"),
    path("auth/tokens", views.ApiTokenListView.as_view(), name="auth-token-list"),
    path("auth/tokens/<str:id>", views.ApiTokenDetailView.as_view(), name="auth-token-detail"),
]
