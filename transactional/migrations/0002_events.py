from django.db import migrations


def copy_transactional_events(apps, schema_editor):
    """The message log moves into the one event table (delivery.Event); nothing recorded is lost."""
    TransactionalEvent = apps.get_model("transactional", "TransactionalEvent")
    Event = apps.get_model("delivery", "Event")
    batch = []
    for old in TransactionalEvent.objects.select_related("message").order_by("id").iterator(chunk_size=2000):
        batch.append(
            Event(
                workspace_id=old.message.workspace_id,
                type=old.kind,
                occurred_at=old.at,
                email=old.message.to_email,
                message_id=str(old.message_id),
                batch_id=old.message.batch_id,
                data={"detail": old.detail},
            )
        )
        if len(batch) >= 2000:
            Event.objects.bulk_create(batch)
            batch = []
    Event.objects.bulk_create(batch)


class Migration(migrations.Migration):
    dependencies = [
        ("transactional", "0001_initial"),
        ("delivery", "0006_events"),
    ]

    operations = [
        migrations.RunPython(copy_transactional_events, migrations.RunPython.noop),
        migrations.DeleteModel(name="TransactionalEvent"),
    ]
