from django.contrib import admin

from config.admin import PermittedActionsMixin
from projects.models import Membership, Project


class MembershipInline(admin.TabularInline):
    model = Membership
    extra = 0
    autocomplete_fields = ["user"]


@admin.register(Project)
class ProjectAdmin(PermittedActionsMixin, admin.ModelAdmin):
    list_display = ["name", "owner", "repo_url", "default_branch", "created_at", "deleted_at"]
    list_select_related = ["owner"]
    # Deleted through the API, kept for their workspaces' records: operators tell them apart here.
    list_filter = ["deleted_at"]
    search_fields = ["name", "owner__email", "=id"]
    autocomplete_fields = ["owner"]
    readonly_fields = ["id", "created_at", "updated_at", "deleted_at"]
    inlines = [MembershipInline]
