from django.apps import AppConfig


class WorkspacesConfig(AppConfig):
    name = "workspaces"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from django.conf import settings

        if settings.WORKSPACE_DRIVER != "local":
            # Build the configured driver now (no network call), so that a missing setting stops
            # manage.py, the web server and the worker at start-up, naming the setting, rather than
            # failing the first workspace. The local driver needs nothing, so it is left for later.
            from workspaces.drivers import get_driver

            get_driver()
