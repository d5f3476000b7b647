"""Per-user limits on what live workspaces may hold (docs/api.md, "Quotas": 403 for a quota).

Every live (not deleted) workspace a user created counts, whatever its status: a stopped workspace
keeps its volume and can be started again at any moment, so it keeps its reservation. Deleting a
workspace frees its share. Limits come from ``WORKSPACE_QUOTA_DEFAULTS``, overridden per user by
operators (``accounts.UserQuota``).
"""

from __future__ import annotations

from django.conf import settings
from django.db.models import Count, Sum

from accounts.models import User, UserQuota
from config.api.errors import ApiError
from workspaces.hardware import Hardware
from workspaces.models import Workspace

# limit name -> (what a workspace adds, the request field it comes from, a word for people)
LIMITS = {
    "max_workspaces": (lambda hw: 1, None, "workspaces"),
    "max_vcpus": (lambda hw: hw.cpus, "hardware.cpus", "CPUs"),
    "max_memory_mb": (lambda hw: hw.memory_mb, "hardware.memory_mb", "MB of memory"),
    "max_volume_gb": (lambda hw: hw.volume_size_gb, "hardware.volume_size_gb", "GB of volumes"),
}


class QuotaExceeded(ApiError):
    status_code = 403
    code = "quota_exceeded"


def quota_limits(user: User) -> dict[str, int]:
    limits = dict(settings.WORKSPACE_QUOTA_DEFAULTS)
    try:
        override = user.quota  # usually loaded with the token (select_related): no query
    except UserQuota.DoesNotExist:
        override = None
    if override is not None:
        limits.update(
            {name: getattr(override, name) for name in LIMITS if getattr(override, name) is not None}
        )
    return limits


def quota_usage(user: User) -> dict[str, int]:
    """What the user's live workspaces hold now, in one query."""
    totals = Workspace.live.filter(created_by=user).aggregate(
        max_workspaces=Count("id"),
        max_vcpus=Sum("cpus"),
        max_memory_mb=Sum("memory_mb"),
        max_volume_gb=Sum("volume_size_gb"),
    )
    return {name: totals[name] or 0 for name in LIMITS}


def quota_check(*, user: User, adding: Hardware) -> None:
    """Raise ``QuotaExceeded`` if one more workspace with ``adding`` would pass any limit. For the
    check to hold under concurrency, call it in the transaction that creates the workspace, after
    locking the user's row."""
    limits, usage = quota_limits(user), quota_usage(user)
    details = []
    for name, (amount, field, word) in LIMITS.items():
        requested = amount(adding)
        if usage[name] + requested > limits[name]:
            details.append(
                {
                    "field": field,
                    "code": "quota_exceeded",
                    "message": f"This would use {usage[name] + requested} {word}; your limit is {limits[name]} "
                    f"({usage[name]} in use).",
                    "quota": {
                        "limit": name,
                        "current": usage[name],
                        "requested": requested,
                        "maximum": limits[name],
                    },
                }
            )
    if details:
        words = ", ".join(LIMITS[d["quota"]["limit"]][2] for d in details)
        raise QuotaExceeded(
            f"Quota exceeded ({words}): delete or shrink a workspace, or ask an operator for more.",
            details=details,
        )
