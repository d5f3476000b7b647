import ipaddress
import uuid

from django.contrib import admin
from django.utils.html import format_html
from django.utils.text import Truncator
from django.utils.timesince import timesince

from workspaces.models import Workspace, WorkspaceEvent, WorkspaceStatus

STATUS_COLOURS = {
    WorkspaceStatus.CREATING: "#6c757d",
    WorkspaceStatus.STARTING: "#0d6efd",
    WorkspaceStatus.RUNNING: "#198754",
    WorkspaceStatus.STOPPING: "#6f42c1",
    WorkspaceStatus.STOPPED: "#495057",
    WorkspaceStatus.ERROR: "#dc3545",
    WorkspaceStatus.STOP_FAILED: "#fd7e14",
}


class DeletedFilter(admin.SimpleListFilter):
    """Deleted workspaces are gone from the API but kept here with their fate; hidden by default."""

    title = "deleted"
    parameter_name = "deleted"

    def lookups(self, request, model_admin):
        return [("no", "Live"), ("yes", "Deleted"), ("all", "All")]

    def choices(self, changelist):
        for lookup, title in self.lookup_choices:
            yield {
                "selected": (self.value() or "no") == lookup,
                "query_string": changelist.get_query_string({self.parameter_name: lookup}),
                "display": title,
            }

    def queryset(self, request, queryset):
        value = self.value() or "no"
        if value == "no":
            return queryset.filter(deleted_at__isnull=True)
        if value == "yes":
            return queryset.filter(deleted_at__isnull=False)
        return queryset


class WorkspaceEventInline(admin.TabularInline):
    """The workspace's timeline, oldest first: who or what moved it, and why."""

    model = WorkspaceEvent
    fields = [
        "created_at",
        "kind",
        "from_status",
        "to_status",
        "actor_kind",
        "actor_user",
        "message",
        "error",
        "operation",
        "task_id",
        "request_id",
        "duration_ms",
    ]
    readonly_fields = fields
    extra = 0
    can_delete = False

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(Workspace)
class WorkspaceAdmin(admin.ModelAdmin):
    list_display = [
        "id",
        "status_badge",
        "in_status_for",
        "short_error",
        "owner",
        "project",
        "hardware_summary",
        "driver",
        "machine_id",
        "private_ip",
        "created_at",
    ]
    list_filter = ["status", DeletedFilter, "driver", "cpu_kind", "created_at"]
    list_select_related = ["project", "created_by"]
    search_fields = ["machine_id", "project__name", "created_by__email"]
    date_hierarchy = "created_at"
    ordering = ["-created_at"]
    readonly_fields = [
        "id",
        "project",
        "created_by",
        "status",
        "status_changed_at",
        "error_message",
        "driver",
        "machine_id",
        "volume_id",
        "private_ip",
        "git_ref",
        "preview_token",
        "created_at",
        "updated_at",
        "provisioned_at",
        "last_activity_at",
        "deleted_at",
        "destroyed_at",
    ]
    fieldsets = [
        (None, {"fields": ["id", "project", "created_by", "status", "status_changed_at", "error_message"]}),
        (
            "Hardware",
            {"fields": ["cpu_kind", "cpus", "memory_mb", "volume_size_gb", "gpu_kind", "keep_active"]},
        ),
        # Read only: editing these by hand would desynchronise us from the provider.
        (
            "Provider",
            {"fields": ["driver", "machine_id", "volume_id", "private_ip", "git_ref", "preview_token"]},
        ),
        (
            "Dates",
            {
                "fields": [
                    "created_at",
                    "updated_at",
                    "provisioned_at",
                    "last_activity_at",
                    "deleted_at",
                    "destroyed_at",
                ]
            },
        ),
    ]
    inlines = [WorkspaceEventInline]

    def has_add_permission(self, request):
        return False  # workspaces are made through the API, which validates and provisions them

    def get_search_results(self, request, queryset, search_term):
        """Also find a workspace by its exact id or private IP, which are not text columns."""
        results, may_have_duplicates = super().get_search_results(request, queryset, search_term)
        term = search_term.strip()
        try:
            results |= queryset.filter(pk=uuid.UUID(term))
        except ValueError:
            pass
        try:
            results |= queryset.filter(private_ip=str(ipaddress.ip_address(term)))
        except ValueError:
            pass
        return results, may_have_duplicates

    @admin.display(description="status", ordering="status")
    def status_badge(self, workspace):
        colour = STATUS_COLOURS.get(workspace.status, "#6c757d")
        return format_html(
            '<span style="background:{};color:#fff;padding:2px 8px;border-radius:8px;font-weight:600">{}</span>',
            colour,
            workspace.status,
        )

    @admin.display(description="for", ordering="status_changed_at")
    def in_status_for(self, workspace):
        return timesince(workspace.status_changed_at)

    @admin.display(description="error")
    def short_error(self, workspace):
        return Truncator(workspace.error_message or "").chars(80)

    @admin.display(description="owner", ordering="created_by__email")
    def owner(self, workspace):
        return workspace.created_by.email

    @admin.display(description="hardware")
    def hardware_summary(self, workspace):
        return workspace.hardware.summary()
