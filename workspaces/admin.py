import ipaddress
import logging
from datetime import timedelta

from django import forms
from django.conf import settings
from django.contrib import admin, messages
from django.contrib.auth import get_permission_codename
from django.core.exceptions import PermissionDenied
from django.db.models import Count, Q
from django.http import HttpResponseNotAllowed, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join
from django.utils.text import Truncator
from django.utils.timesince import timesince

from config.api.errors import ApiError
from config.operations.admin import PermittedActionsMixin
from config.values import parse_uuid
from workspaces import operations, reconciler, services
from workspaces.drivers import DriverError, get_driver
from workspaces.models import ActorKind, Workspace, WorkspaceEvent, WorkspaceStatus

logger = logging.getLogger(__name__)
S = WorkspaceStatus

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


def stuck_q(now=None) -> Q:
    """Live workspaces past their state's ceiling (settings.WORKSPACE_STATE_CEILINGS_SECONDS): the
    ones the reconciler is about to time out, or would if it ran."""
    now = now or timezone.now()
    condition = Q(pk__in=[])
    for operation in operations.all_operations():  # each transient status, as the reconciler reads them
        seconds = settings.WORKSPACE_STATE_CEILINGS_SECONDS.get(operation.runs_in)
        if seconds is not None:
            condition |= Q(status=operation.runs_in, status_changed_at__lt=now - timedelta(seconds=seconds))
    return condition & Q(deleted_at__isnull=True)


class StuckFilter(admin.SimpleListFilter):
    """Past its state's ceiling: still creating, starting or stopping for longer than it may."""

    title = "stuck"
    parameter_name = "stuck"

    def lookups(self, request, model_admin):
        return [("yes", "Past its state's ceiling")]

    def queryset(self, request, queryset):
        if self.value() == "yes":
            return queryset.filter(stuck_q())
        return queryset


class ForceErrorForm(forms.Form):
    reason = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 3, "cols": 80}),
        max_length=1000,
        help_text="Shown to the workspace's owner as its error message, and kept on its timeline.",
    )


class WorkspaceEventInline(admin.TabularInline):
    """The workspace's timeline, oldest first: who or what moved it, and why."""

    model = WorkspaceEvent
    # Five columns, so the table fits a 1280 px screen: an attempt's task id, provider request id
    # and duration are one click away (``details``) rather than six more columns.
    fields = ["created_at", "change", "actor", "what_happened", "details"]
    readonly_fields = fields
    extra = 0
    can_delete = False
    verbose_name_plural = "timeline (status changes, attempts with task and provider request ids, errors)"

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("actor_user", "actor_token")

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    @admin.display(description="change")
    def change(self, event):
        if event.from_status or event.to_status:
            return format_html(
                "{}<br><small>{} → {}</small>", event.kind, event.from_status or "—", event.to_status or "—"
            )
        return event.kind

    @admin.display(description="by")
    def actor(self, event):
        if event.actor_user is None:
            return event.actor_kind
        return format_html("{}<br><small>{}</small>", event.actor_kind, event.actor_user.email)

    @admin.display(description="message")
    def what_happened(self, event):
        if not event.error:
            return event.message
        return format_html('{}<div class="event-error">{}</div>', event.message, event.error)

    @admin.display(description="details")
    def details(self, event):
        rows = [
            ("operation", event.operation),
            ("task id", event.task_id),
            ("request id", event.request_id),
            ("duration", f"{event.duration_ms} ms" if event.duration_ms is not None else ""),
        ]
        rows = [(label, value) for label, value in rows if value]
        if not rows:
            return ""
        items = format_html_join("", "<dt>{}</dt><dd>{}</dd>", rows)
        return format_html(
            '<details class="event-details"><summary>{}</summary><dl>{}</dl></details>',
            event.operation or "more",
            items,
        )


@admin.register(Workspace)
class WorkspaceAdmin(PermittedActionsMixin, admin.ModelAdmin):
    # Seven columns, so the list fits a 1280 px screen: the machine's driver, id and address share
    # one column, the project and its owner another; the full id is the link's title. The creation
    # date is in the date hierarchy and the filters (and on the workspace's page).
    list_display = [
        "short_id",
        "status_badge",
        "in_status_for",
        "short_error",
        "project_and_owner",
        "hardware_summary",
        "machine",
    ]
    list_display_links = ["short_id"]
    list_filter = ["status", StuckFilter, DeletedFilter, "driver", "cpu_kind", "created_at"]
    list_select_related = ["project", "created_by"]
    search_fields = ["machine_id", "project__name", "created_by__email"]
    date_hierarchy = "created_at"
    ordering = ["-created_at"]
    readonly_fields = [
        "id",
        "project_link",
        "owner_link",
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
        # The machine was made with this hardware: changing a row would not resize it.
        "cpu_kind",
        "cpus",
        "memory_mb",
        "volume_size_gb",
        "gpu_kind",
    ]
    fieldsets = [
        (
            None,
            {"fields": ["id", "project_link", "owner_link", "status", "status_changed_at", "error_message"]},
        ),
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
    actions = ["retry_provisioning", "start", "stop", "destroy", "force_error"]
    change_list_template = "admin/workspaces/workspace/change_list.html"
    change_form_template = "admin/workspaces/workspace/change_form.html"

    def change_view(self, request, object_id, form_url="", extra_context=None):
        # The same actions as the list, for this one workspace (posted to the changelist).
        choices = [(name, description) for name, description in self.get_action_choices(request) if name]
        extra_context = {**(extra_context or {}), "workspace_actions": choices}
        return super().change_view(request, object_id, form_url, extra_context=extra_context)

    def _back(self, request, queryset):
        """From a workspace's own page, go back to it after an action."""
        if request.POST.get("_workspace_page") and queryset.count() == 1:
            return HttpResponseRedirect(
                reverse("admin:workspaces_workspace_change", args=[queryset.get().pk])
            )
        return None

    def has_add_permission(self, request):
        return False  # workspaces are made through the API, which validates and provisions them

    def has_delete_permission(self, request, obj=None):
        return False  # rows are kept with their fate; "Destroy" deletes through the service

    def has_destroy_permission(self, request, obj=None):
        """Destroying (the "Destroy" action, an orphan's Destroy button) needs the model's delete
        permission, which Django's own hard delete is denied whatever the operator holds."""
        opts = self.opts
        return request.user.has_perm(f"{opts.app_label}.{get_permission_codename('delete', opts)}")

    def get_search_results(self, request, queryset, search_term):
        """Also find a workspace by its exact id or private IP, which are not text columns."""
        results, may_have_duplicates = super().get_search_results(request, queryset, search_term)
        term = search_term.strip()
        if (pk := parse_uuid(term)) is not None:
            results |= queryset.filter(pk=pk)
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

    @admin.display(description="id", ordering="id")
    def short_id(self, workspace):
        return format_html('<span title="{}">{}…</span>', workspace.pk, str(workspace.pk)[:8])

    @admin.display(description="project / owner", ordering="project__name")
    def project_and_owner(self, workspace):
        return format_html("{}<br><small>{}</small>", workspace.project.name, workspace.created_by.email)

    @admin.display(description="machine", ordering="machine_id")
    def machine(self, workspace):
        if not workspace.machine_id:
            return workspace.driver
        return format_html(
            "{}<br><small>{} · {}</small>",
            workspace.machine_id,
            workspace.driver,
            workspace.private_ip or "—",
        )

    @admin.display(description="hardware")
    def hardware_summary(self, workspace):
        return workspace.hardware.summary()

    @admin.display(description="project")
    def project_link(self, workspace):
        url = reverse("admin:projects_project_change", args=[workspace.project_id])
        return format_html('<a href="{}">{}</a>', url, workspace.project.name)

    @admin.display(description="owner")
    def owner_link(self, workspace):
        url = reverse("admin:accounts_user_change", args=[workspace.created_by_id])
        return format_html('<a href="{}">{}</a>', url, workspace.created_by.email)

    # --- the changelist: counts per status ------------------------------------------------------------

    def changelist_view(self, request, extra_context=None):
        # One aggregate query over live workspaces, whatever the number of rows.
        aggregates = {str(status): Count("pk", filter=Q(status=status)) for status in S}
        aggregates["stuck"] = Count("pk", filter=stuck_q())
        counts = Workspace.live.aggregate(**aggregates)
        status_counts = [
            {"status": str(status), "count": counts[str(status)], "colour": STATUS_COLOURS[status]}
            for status in S
        ]
        extra_context = {
            **(extra_context or {}),
            "status_counts": status_counts,
            "stuck_count": counts["stuck"],
            "live_count": sum(item["count"] for item in status_counts),
        }
        return super().changelist_view(request, extra_context=extra_context)

    # --- actions: the same services as the API, with the operator as actor ----------------------------

    def _operator(self, request) -> services.Actor:
        return services.Actor(ActorKind.OPERATOR, user=request.user)

    def _refuse(self, request, workspace, what: str, needs: str, why: str = "") -> None:
        state = "deleted" if workspace.deleted_at else workspace.status
        message = why or f"Cannot {what} workspace {workspace.id}: it is '{state}'; {what} needs {needs}."
        self.message_user(request, message, level=messages.ERROR)

    def _done(self, request, workspace, message: str) -> None:
        self.log_change(request, workspace, message)
        self.message_user(request, f"Workspace {workspace.id}: {message}", level=messages.SUCCESS)

    def _each(self, request, queryset, what: str, act, needs: str) -> None:
        """Run ``act(workspace)`` on each selected workspace; an ApiError is a refusal, reported
        with the workspace's id and state."""
        for workspace in queryset.select_related("project", "created_by"):
            if workspace.deleted_at is not None:
                self._refuse(request, workspace, what, needs)
                continue
            try:
                message = act(workspace)
            except ApiError as exc:
                self._refuse(
                    request,
                    workspace,
                    what,
                    needs,
                    why=f"Workspace {workspace.id}: {exc.message}",
                )
                continue
            except DriverError as exc:
                self._refuse(
                    request,
                    workspace,
                    what,
                    needs,
                    why=f"Workspace {workspace.id}: the provider said: {exc.message}",
                )
                continue
            self._done(request, workspace, message)
        return self._back(request, queryset)

    # Changing a workspace's state needs "change"; destroying one needs "delete" (has_destroy_permission).
    # An operator with "view" only sees the console and none of these.

    @admin.action(
        description="Retry provisioning (error, or stuck creating/starting)", permissions=["change"]
    )
    def retry_provisioning(self, request, queryset):
        operator = self._operator(request)

        def act(workspace):
            if workspace.status == S.ERROR:
                services.workspace_start(workspace=workspace, actor=operator)
                return "provisioning retried (start requested by an operator)."
            if workspace.status in (operations.PROVISION.runs_in, operations.START.runs_in):
                # What the reconciler does for lost work; queuing twice is harmless (tasks resume from the row).
                services.workspace_requeue(
                    workspace=workspace,
                    actor=operator,
                    reason=f"Operator {request.user.email} asked (still '{workspace.status}')",
                )
                return "provisioning queued again."
            raise services.InvalidState(
                f"Cannot retry provisioning a workspace that is '{workspace.status}'; retry provisioning "
                "needs 'error', 'creating' or 'starting' (Start is for a stopped one)."
            )

        return self._each(
            request, queryset, "retry provisioning of", act, "'error', 'creating' or 'starting'"
        )

    @admin.action(description="Start", permissions=["change"])
    def start(self, request, queryset):
        operator = self._operator(request)

        def act(workspace):
            services.workspace_start(workspace=workspace, actor=operator)
            return "start requested."

        return self._each(request, queryset, "start", act, "'stopped' or 'error'")

    @admin.action(description="Stop", permissions=["change"])
    def stop(self, request, queryset):
        operator = self._operator(request)

        def act(workspace):
            services.workspace_stop(
                workspace=workspace,
                actor=operator,
                reason=f"Stop requested by operator {request.user.email}.",
            )
            return "stop requested."

        return self._each(request, queryset, "stop", act, "'running' or 'stop_failed'")

    @admin.action(
        description="Destroy (delete; machine and volume destroyed in the background)",
        permissions=["destroy"],
    )
    def destroy(self, request, queryset):
        operator = self._operator(request)
        for workspace in queryset:
            if workspace.destroyed_at is not None:
                self._refuse(
                    request,
                    workspace,
                    "destroy",
                    "a workspace that still has provider resources",
                    why=f"Cannot destroy workspace {workspace.id}: it was already destroyed at {workspace.destroyed_at:%Y-%m-%d %H:%M:%S} UTC.",
                )
                continue
            if workspace.deleted_at is not None:
                # Deleted, not yet destroyed: its destroy may have been lost; queue it again (harmless).
                try:
                    services.workspace_requeue(
                        workspace=workspace,
                        actor=operator,
                        reason=f"Operator {request.user.email} asked (deleted, not yet destroyed)",
                    )
                except ApiError as exc:
                    self._refuse(
                        request, workspace, "destroy", "", why=f"Workspace {workspace.id}: {exc.message}"
                    )
                    continue
                self._done(request, workspace, "destroy queued again.")
                continue
            services.workspace_delete(workspace=workspace, actor=operator)
            self._done(request, workspace, "deleted; its machine and volume are being destroyed.")
        return self._back(request, queryset)

    @admin.action(description="Force to error with a reason…", permissions=["change"])
    def force_error(self, request, queryset):
        form = ForceErrorForm(request.POST if "apply" in request.POST else None)
        if form.is_bound and form.is_valid():
            operator = self._operator(request)
            reason = form.cleaned_data["reason"]

            def act(workspace):
                services.workspace_force_error(workspace=workspace, actor=operator, reason=reason)
                return f"forced to error: {reason}"

            return self._each(request, queryset, "force to error", act, "any live state but 'error'")
            return None
        context = {
            **self.admin_site.each_context(request),
            "title": "Force to error",
            "opts": self.model._meta,
            "form": form,
            "workspaces": queryset.select_related("project", "created_by"),
            "action": "force_error",
            "action_checkbox_name": admin.helpers.ACTION_CHECKBOX_NAME,
            "workspace_page": request.POST.get("_workspace_page", ""),
        }
        return TemplateResponse(request, "admin/workspaces/workspace/force_error.html", context)

    # --- orphans and drift ----------------------------------------------------------------------------

    def get_urls(self):
        view = self.admin_site.admin_view(self.orphans_view)
        return [path("orphans/", view, name="workspaces_workspace_orphans"), *super().get_urls()]

    def orphans_view(self, request):
        """Provider resources with no live workspace, and live workspaces whose machine is gone.
        Reading it needs "view"; Mark error needs "change" and Destroy "delete" (checked again on POST)."""
        if not self.has_view_permission(request):
            raise PermissionDenied
        if request.method == "POST":
            return self._orphans_post(request)
        if request.method != "GET":
            return HttpResponseNotAllowed(["GET", "POST"])
        driver = get_driver()
        inventory_error = ""
        try:
            orphans, drift = reconciler.inventory(driver)
        except DriverError as exc:
            orphans, drift, inventory_error = [], [], exc.message
        context = {
            **self.admin_site.each_context(request),
            "title": f"Orphans and drift at the '{driver.name}' provider",
            "opts": self.model._meta,
            "driver_name": driver.name,
            "orphans": orphans,
            "drift": drift,
            "inventory_error": inventory_error,
            "can_destroy": self.has_destroy_permission(request),
            "can_mark_error": self.has_change_permission(request),
        }
        return TemplateResponse(request, "admin/workspaces/workspace/orphans.html", context)

    def _orphans_post(self, request):
        """Destroy an orphan ("delete") or mark a drifting workspace error ("change"), through the
        reconciler's own functions, with the operator as the timeline's actor."""
        action = request.POST.get("action")
        needed = {"destroy": self.has_destroy_permission}.get(action, self.has_change_permission)
        if not needed(request):
            raise PermissionDenied  # a view-only operator posts nothing here
        back = HttpResponseRedirect(reverse("admin:workspaces_workspace_orphans"))
        workspace_id = request.POST.get("workspace_id", "")
        if parse_uuid(workspace_id) is None:
            self.message_user(request, f"No such workspace id: {workspace_id!r}.", level=messages.ERROR)
            return back
        operator = self._operator(request)
        try:
            if action == "destroy":
                what = reconciler.orphan_destroy_by_id(workspace_id=workspace_id, actor=operator)
                workspace = Workspace.objects.filter(pk=workspace_id).first()
                if workspace is not None:
                    self.log_change(request, workspace, f"Destroyed orphan {what}.")
                self.message_user(request, f"Destroyed {what} of workspace {workspace_id}.", messages.SUCCESS)
            elif action == "mark_error":
                workspace = reconciler.drift_mark_error(workspace_id=workspace_id, actor=operator)
                self.log_change(request, workspace, "Marked a drift error (machine gone).")
                self.message_user(
                    request, f"Workspace {workspace_id} is now 'error'; Start recovers it.", messages.SUCCESS
                )
            else:
                self.message_user(request, f"Unknown action {action!r}.", level=messages.ERROR)
        except ApiError as exc:
            self.message_user(request, exc.message, level=messages.ERROR)
        except DriverError as exc:
            self.message_user(request, f"The provider said: {exc.message}", level=messages.ERROR)
        return back
