from django.apps import AppConfig


class WorkspacesConfig(AppConfig):
    name = "workspaces"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from django.conf import settings

        from projects.services import project_delete_cascade
        from workspaces import hardware
        from workspaces.drivers import get_driver
        from workspaces.services import workspaces_delete_of_project

        # Deleting a project deletes its workspaces; projects, below, cannot import this app.
        project_delete_cascade(workspaces_delete_of_project)

        # The driver's part of the hardware check, for the apps below this one (accounts' default
        # hardware) that may import workspaces/hardware.py but not the drivers. Looked up at each
        # check: tests switch WORKSPACE_DRIVER per test.
        hardware.set_capability_check(lambda choice: get_driver().check_hardware(choice))
        if settings.WORKSPACE_DRIVER != "local":
            # Build the configured driver now (no network call), so that a missing setting stops
            # manage.py, the web server and the worker at start-up, naming the setting, rather than
            # failing the first workspace. The local driver needs nothing, so it is left for later.
            get_driver()
