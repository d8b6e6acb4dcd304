#!/usr/bin/env python
"""Django's command-line utility for the auth service (run from the repository root:
``python auth/manage.py migrate``, ``python auth/manage.py makemigrations accounts``)."""

import os
import sys
from pathlib import Path


def main() -> None:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "auth.config.settings")
    from django.core.management import execute_from_command_line

    execute_from_command_line(sys.argv)


if __name__ == "__main__":
    main()
