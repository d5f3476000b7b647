#!/usr/bin/env python
"""Django's command-line utility for administrative tasks."""

import os
import sys


def main():
    # Development by default (a random key and pepper per checkout, kept in var/); a deployment sets
    # DJANGO_SETTINGS_MODULE=config.settings.production, as the image and the recipes do.
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.development")
    from django.core.management import execute_from_command_line

    from config.settings import SettingsRefused

    try:
        execute_from_command_line(sys.argv)
    except SettingsRefused as exc:
        sys.exit(str(exc))  # the settings name each problem, one line each: that alone, no traceback


if __name__ == "__main__":
    main()
