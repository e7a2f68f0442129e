"""The seeded tour and badges, a journey for every existing user, and the beat task that pushes the
models online to open welcome screens."""

from django.db import migrations

from onboarding.seed import seed_rows

MODELS_TASK_NAME = "onboarding: push models online"


def forwards(apps, schema_editor):
    seed_rows(apps.get_model("onboarding", "TourStep"), apps.get_model("onboarding", "Badge"))
    User = apps.get_model("accounts", "User")
    Journey = apps.get_model("onboarding", "Journey")
    Journey.objects.bulk_create(
        [Journey(user_id=pk, signed_up_at=joined) for pk, joined in User.objects.values_list("pk", "date_joined")],
        ignore_conflicts=True, batch_size=5000)
    IntervalSchedule = apps.get_model("django_celery_beat", "IntervalSchedule")
    PeriodicTask = apps.get_model("django_celery_beat", "PeriodicTask")
    every, _ = IntervalSchedule.objects.get_or_create(every=10, period="seconds")
    PeriodicTask.objects.update_or_create(
        name=MODELS_TASK_NAME,
        defaults={"task": "onboarding.tasks.models_online_broadcast", "interval": every, "queue": "default",
                  "enabled": True},
    )


def backwards(apps, schema_editor):
    apps.get_model("django_celery_beat", "PeriodicTask").objects.filter(name=MODELS_TASK_NAME).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("onboarding", "0001_initial"),
        ("accounts", "0005_profile_and_invitations"),
        ("django_celery_beat", "0019_alter_periodictasks_options"),
    ]

    operations = [migrations.RunPython(forwards, backwards)]
