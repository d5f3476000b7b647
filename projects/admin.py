from django import forms
from django.contrib import admin

from config.operations.admin import PermittedActionsMixin
from projects.models import Invitation, Membership, Project
from projects.redaction import keep_stored_credentials, redact_credentials


class MembershipInline(admin.TabularInline):
    model = Membership
    extra = 0
    autocomplete_fields = ["user"]


class ProjectForm(forms.ModelForm):
    """The repository URL's credential is never put in the page: the field shows it masked, and
    saving the masked value unchanged keeps the stored credential."""

    class Meta:
        model = Project
        fields = ["owner", "name", "description", "repo_url", "default_branch"]
        help_texts = {
            "repo_url": "Cloned into each new workspace. A credential in it is shown masked (user:***@); "
            "leave the mask as it is to keep the stored credential, or type the whole URL to replace it.",
        }

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self.instance.repo_url:
            self.initial["repo_url"] = redact_credentials(self.instance.repo_url)

    def clean_repo_url(self):
        return keep_stored_credentials(self.cleaned_data.get("repo_url"), self.instance.repo_url)


@admin.register(Project)
class ProjectAdmin(PermittedActionsMixin, admin.ModelAdmin):
    form = ProjectForm
    list_display = ["name", "owner", "repository", "default_branch", "created_at", "deleted_at"]
    list_select_related = ["owner"]
    # Deleted through the API, kept for their workspaces' records: operators tell them apart here.
    list_filter = ["deleted_at"]
    search_fields = ["name", "owner__email", "=id"]
    autocomplete_fields = ["owner"]
    readonly_fields = ["id", "created_at", "updated_at", "deleted_at", "repository"]
    inlines = [MembershipInline]

    @admin.display(description="Repository URL", ordering="repo_url")
    def repository(self, project: Project) -> str | None:
        return redact_credentials(project.repo_url) if project.repo_url else None

    def get_fields(self, request, obj=None):
        fields = [f for f in super().get_fields(request, obj) if f != "repository"]
        if obj is not None and not self.has_change_permission(request, obj):
            # A view-only operator sees the fields as text, straight from the row: show the masked one.
            fields = ["repository" if f == "repo_url" else f for f in fields]
        return fields


@admin.register(Invitation)
class InvitationAdmin(PermittedActionsMixin, admin.ModelAdmin):
    """Invitations to projects, for the record: they are made and answered through the API only."""

    list_display = [
        "email",
        "project",
        "role",
        "status",
        "invited_by",
        "created_at",
        "expires_at",
        "answered_at",
    ]
    list_select_related = ["project", "invited_by"]
    list_filter = ["status", "role"]
    search_fields = ["email", "project__name", "=project__id", "=id"]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False
