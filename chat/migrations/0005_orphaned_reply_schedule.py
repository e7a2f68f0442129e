from __future__ import annotations

from django.db import migrations


def schedule(apps, schema_editor) -> None:  # noqa: ANN001
    IntervalSchedule = apps.get_model("django_celery_beat", "IntervalSchedule")
    PeriodicTask = apps.get_model("django_celery_beat", "PeriodicTask")
    every, _ = IntervalSchedule.objects.get_or_create(every=10, period="seconds")
    PeriodicTask.objects.update_or_create(
        name="chat: finish replies whose web process died",
        defaults={"task": "chat.tasks.messages_finish_orphaned", "interval": every, "queue": "default"},
    )


def unschedule(apps, schema_editor) -> None:  # noqa: ANN001
    apps.get_model("django_celery_beat", "PeriodicTask").objects.filter(
        name="chat: finish replies whose web process died").delete()


class Migration(migrations.Migration):
    dependencies = [("chat", "0004_message_model_note"), ("django_celery_beat", "0019_alter_periodictasks_options")]
    operations = [migrations.RunPython(schedule, unschedule)]
