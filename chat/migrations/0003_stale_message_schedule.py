from __future__ import annotations

from django.db import migrations


def schedule(apps, schema_editor) -> None:  # noqa: ANN001
    IntervalSchedule = apps.get_model("django_celery_beat", "IntervalSchedule")
    PeriodicTask = apps.get_model("django_celery_beat", "PeriodicTask")
    every, _ = IntervalSchedule.objects.get_or_create(every=5, period="minutes")
    PeriodicTask.objects.update_or_create(
        name="chat: interrupt stale streaming replies",
        defaults={"task": "chat.tasks.messages_interrupt_stale", "interval": every, "queue": "default"},
    )


def unschedule(apps, schema_editor) -> None:  # noqa: ANN001
    apps.get_model("django_celery_beat", "PeriodicTask").objects.filter(
        name="chat: interrupt stale streaming replies").delete()


class Migration(migrations.Migration):
    dependencies = [("chat", "0002_seed_assistants"), ("django_celery_beat", "0019_alter_periodictasks_options")]
    operations = [migrations.RunPython(schedule, unschedule)]
