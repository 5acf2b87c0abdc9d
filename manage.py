#!/usr/bin/env python
"""Django's command-line utility for administrative tasks."""

import os
import sys


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "ameide.settings")
    from django.core.management import execute_from_command_line

    from tenants.exceptions import TenancyError

    try:
        execute_from_command_line(sys.argv)
    except TenancyError as exc:
        # Fail closed, and say so plainly: e.g. a command read tenant rows with no tenant set.
        # `manage.py tenants exec SLUG -- <command>` runs a command inside one tenant.
        sys.stderr.write(f"CommandError: {type(exc).__name__}: {exc}\n")
        sys.exit(1)


if __name__ == "__main__":
    main()
