from django.apps import AppConfig
from django.db.models.signals import post_migrate


class CommonConfig(AppConfig):
    name = "common"

    def ready(self) -> None:
        # After every migrate the system's periodic tasks exist in django-celery-beat exactly once,
        # with the intervals from settings (a few static entries, never one per campaign: docs/architecture.md).
        # Sent per app that has models; django_celery_beat's is the one whose tables we need.
        from django.apps import apps

        from common.periodic import register_system_periodic_tasks

        post_migrate.connect(
            register_system_periodic_tasks,
            sender=apps.get_app_config("django_celery_beat"),
            dispatch_uid="register_system_periodic_tasks",
        )
