"""What every page of the admin (the operator console) shares; the apps' ``admin.py`` register models.

- ``PermittedActionsMixin``: an action the operator may not run is a 403, not a silent no-op; a
  forged selection is a 400, not a 500.
- ``AdminNulMiddleware``: a NUL character in the admin's query string or form data is a 400.
"""

from django.contrib.admin import helpers
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import HttpResponseBadRequest
from django.urls import reverse

FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")


class PermittedActionsMixin:
    """Each action declares the permission it needs (``allowed_permissions``); Django then leaves it
    out of the actions menu of an operator without it. Posting it anyway (a forged form, an old page)
    would fall through to a plain changelist, or to "No action selected": this answers 403 instead,
    so that a refusal is a refusal."""

    def changelist_view(self, request, extra_context=None):
        name = request.POST.get("action", "") if request.method == "POST" else ""
        if name:
            known = {action_name for _, action_name, _ in self._get_base_actions()}
            if name in known and name not in self.get_actions(request):
                raise PermissionDenied
            try:
                for pk in request.POST.getlist(helpers.ACTION_CHECKBOX_NAME):
                    self.opts.pk.to_python(pk)
            except ValidationError:
                # A forged selection ("abc" for a UUID): Django's query would raise, a 500.
                return HttpResponseBadRequest("<h1>Bad Request (400)</h1><p>No such selection.</p>")
        return super().changelist_view(request, extra_context=extra_context)


class AdminNulMiddleware:
    """PostgreSQL refuses a NUL character in a text parameter: ``?status__exact=%00`` or ``?q=%00``
    would reach it from a changelist filter or search and answer 500. No admin page has a use for one,
    so a request to the admin carrying NUL in its query string or form data is refused here with a
    400, before any filter, search, action or the login's lockout check sees it."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if request.path_info.startswith(reverse("admin:index")) and self._has_nul(request):
            return HttpResponseBadRequest(
                "<h1>Bad Request (400)</h1><p>The operator console does not accept NUL characters "
                "in a query string or form field.</p>"
            )
        return self.get_response(request)

    @staticmethod
    def _has_nul(request) -> bool:
        data = [request.GET]
        if request.method == "POST" and request.content_type in FORM_TYPES:
            data.append(request.POST)
        return any(
            "\x00" in key or any("\x00" in value for value in values)
            for query in data
            for key, values in query.lists()
        )
