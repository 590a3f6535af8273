#!/usr/bin/env python
import os
import sys


def main() -> None:
    # Without DJANGO_SETTINGS_MODULE: production where the environment carries a SECRET_KEY (a server's does;
    # development never needs one), else the development settings, for developers running manage.py by hand,
    # with a line on stderr every time. The processes that serve (config.wsgi, config.celery) always default
    # to production, and the dev settings refuse a public ALLOWED_HOSTS (docs/decisions/021).
    if not os.environ.get("DJANGO_SETTINGS_MODULE"):
        if os.environ.get("SECRET_KEY"):
            os.environ["DJANGO_SETTINGS_MODULE"] = "config.settings.production"
        else:
            os.environ["DJANGO_SETTINGS_MODULE"] = "config.settings.dev"
            print(
                "manage.py: DJANGO_SETTINGS_MODULE is not set, using config.settings.dev (DEBUG, a published "
                "SECRET_KEY; for this machine only). On a server set "
                "DJANGO_SETTINGS_MODULE=config.settings.production.",
                file=sys.stderr,
            )
    from django.core.management import execute_from_command_line

    execute_from_command_line(sys.argv)


if __name__ == "__main__":
    main()
