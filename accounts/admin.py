from django.contrib import admin
from django.contrib.auth.admin import GroupAdmin as DjangoGroupAdmin
from django.contrib.auth.admin import UserAdmin as DjangoUserAdmin
from django.contrib.auth.forms import AdminUserCreationForm, UserChangeForm
from django.contrib.auth.models import Group
from django.template.response import TemplateResponse

from accounts.models import ApiToken, User, UserQuota, UserSettings
from accounts.services import api_token_create, api_token_revoke
from config.operations.admin import PermittedActionsMixin

# The operator console shows a user's quota use beside their overrides: an admin module sits on top
# (Django loads it last, nothing imports it), so this one upward import closes no cycle
# (tests/test_import_graph.py lists it).
from workspaces.quotas import quota_limits, quota_usage


class UserSettingsInline(admin.StackedInline):
    model = UserSettings
    can_delete = False
    verbose_name_plural = "default hardware"


class UserQuotaInline(admin.StackedInline):
    """Per-user limits; blank means the deployment's default. Shows what the user holds now."""

    model = UserQuota
    can_delete = True
    verbose_name_plural = "quota overrides (blank: the deployment's default)"
    readonly_fields = ["current_use"]
    fields = ["max_workspaces", "max_vcpus", "max_memory_mb", "max_volume_gb", "current_use"]

    @admin.display(description="in use now / limit")
    def current_use(self, quota):
        if quota is None or quota.user_id is None:
            return "-"
        usage, limits = quota_usage(quota.user), quota_limits(quota.user)
        return ", ".join(f"{name.removeprefix('max_')}: {usage[name]} / {limits[name]}" for name in usage)


class ApiTokenInline(admin.TabularInline):
    model = ApiToken
    fields = ["prefix", "name", "created_at", "last_used_at", "expires_at", "revoked_at"]
    readonly_fields = fields
    extra = 0
    can_delete = False
    show_change_link = True

    def has_add_permission(self, request, obj=None):
        return False  # tokens are made on their own page, which shows the secret once


class EmailUserCreationForm(AdminUserCreationForm):
    class Meta:
        model = User
        fields = ("email",)


class EmailUserChangeForm(UserChangeForm):
    class Meta:
        model = User
        fields = "__all__"


PRIVILEGE_FIELDS = ["is_staff", "is_superuser", "groups", "user_permissions"]


class OperatorsOnlyForSuperusers:
    """Who operates, and with which permissions, is decided by superusers: "change user" or "change
    group" alone must not let a staff user grant themselves (or anyone) more, nor take over a
    superuser's account by setting its password."""

    def has_change_permission(self, request, obj=None):
        if obj is not None and obj.is_superuser and not request.user.is_superuser:
            return False
        return super().has_change_permission(request, obj)

    def has_delete_permission(self, request, obj=None):
        if obj is not None and obj.is_superuser and not request.user.is_superuser:
            return False
        return super().has_delete_permission(request, obj)

    def get_readonly_fields(self, request, obj=None):
        readonly = list(super().get_readonly_fields(request, obj))
        if not request.user.is_superuser:
            readonly += [f for f in PRIVILEGE_FIELDS if f not in readonly]
        return readonly


@admin.register(User)
class UserAdmin(PermittedActionsMixin, OperatorsOnlyForSuperusers, DjangoUserAdmin):
    form = EmailUserChangeForm
    add_form = EmailUserCreationForm
    ordering = ["email"]
    list_display = ["email", "display_name", "is_staff", "is_active", "created_at"]
    list_filter = ["is_staff", "is_active"]
    search_fields = ["email", "display_name", "=id"]
    readonly_fields = ["id", "created_at", "updated_at", "last_login"]
    fieldsets = [
        (None, {"fields": ["id", "email", "display_name", "password"]}),
        ("Permissions", {"fields": ["is_active", "is_staff", "is_superuser", "groups", "user_permissions"]}),
        ("Dates", {"fields": ["last_login", "created_at", "updated_at"]}),
    ]
    add_fieldsets = [
        (None, {"classes": ["wide"], "fields": ["email", "usable_password", "password1", "password2"]})
    ]
    inlines = [UserSettingsInline, UserQuotaInline, ApiTokenInline]


admin.site.unregister(Group)


@admin.register(Group)
class GroupAdmin(PermittedActionsMixin, DjangoGroupAdmin):
    """Groups carry permissions: only superusers make or change them (see OperatorsOnlyForSuperusers)."""

    def has_add_permission(self, request):
        return request.user.is_superuser

    def has_change_permission(self, request, obj=None):
        return request.user.is_superuser

    def has_delete_permission(self, request, obj=None):
        return request.user.is_superuser


@admin.register(ApiToken)
class ApiTokenAdmin(PermittedActionsMixin, admin.ModelAdmin):
    """Tokens: recognisable by prefix, revocable, and never readable after creation (only a digest
    is stored). The secret is shown once, in the answer to the POST that made it: never in a message,
    which would carry it through the (signed, not encrypted) messages cookie or the session."""

    list_display = ["prefix", "user", "name", "created_at", "last_used_at", "expires_at", "revoked_at"]
    list_filter = ["revoked_at", "expires_at"]
    list_select_related = ["user"]
    search_fields = ["key", "name", "user__email"]
    autocomplete_fields = ["user"]
    actions = ["revoke"]

    def get_fields(self, request, obj=None):
        if obj is None:
            return ["user", "name", "expires_at"]
        return [
            "prefix",
            "user",
            "name",
            "created_at",
            "last_used_at",
            "expires_at",
            "revoked_at",
            "created_by_token",
        ]

    def get_readonly_fields(self, request, obj=None):
        if obj is None:
            return []
        return ["prefix", "user", "created_at", "last_used_at", "created_by_token"]

    def save_model(self, request, obj, form, change):
        if change:
            super().save_model(request, obj, form, change)
            if "revoked_at" in form.changed_data and obj.revoked_at is not None:
                api_token_revoke(token=obj)  # what it made goes with it, as with the action
            return None
        new = api_token_create(user=obj.user, name=obj.name, expires_at=obj.expires_at)
        obj.pk, obj.key, obj.digest, obj.created_at = (
            new.token.pk,
            new.token.key,
            new.token.digest,
            new.token.created_at,
        )
        obj._state.adding = False
        obj.new_secret = new.secret  # for response_add, on this request's object only

    def response_add(self, request, obj, post_url_continue=None):
        secret = getattr(obj, "new_secret", None)
        if secret is None:
            return super().response_add(request, obj, post_url_continue)
        context = {
            **self.admin_site.each_context(request),
            "title": "New API token",
            "opts": self.opts,
            "token": obj,
            "secret": secret,
        }
        return TemplateResponse(request, "admin/accounts/apitoken/created.html", context)

    @admin.action(description="Revoke the selected tokens", permissions=["change"])
    def revoke(self, request, queryset):
        tokens = list(queryset.select_related("user"))
        for token in tokens:
            api_token_revoke(token=token)
            self.log_change(request, token, "Revoked.")  # Django's history says who revoked it
        self.message_user(request, f"Revoked {len(tokens)} token(s).")
