from django.conf import settings


def register_system_periodic_tasks(**kwargs) -> None:
    from django_celery_beat.models import IntervalSchedule, PeriodicTask

    for name, spec in settings.SYSTEM_PERIODIC_TASKS.items():
        interval, _ = IntervalSchedule.objects.get_or_create(
            every=spec["every_seconds"], period=IntervalSchedule.SECONDS
        )
        PeriodicTask.objects.update_or_create(
            name=name,
            defaults={
                "task": spec["task"],
                "interval": interval,
                "queue": spec.get("queue", "default"),
                "enabled": True,
                "description": spec.get("description", ""),
            },
        )
