#!/usr/bin/env python
"""Django's command-line utility. Starts the embedded services first when they are the default."""

from __future__ import annotations

import os
import sys


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.dev")
    if not os.environ["DJANGO_SETTINGS_MODULE"].endswith("production"):
        from config import services

        try:
            services.up(quiet=True)
        except services.ServiceError as exc:
            sys.exit(f"parley: {exc}")
    from django.core.management import execute_from_command_line

    execute_from_command_line(sys.argv)


if __name__ == "__main__":
    main()
