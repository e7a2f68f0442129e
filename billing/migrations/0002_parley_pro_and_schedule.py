"""The "Parley Pro" offer and the beat schedule that charges what is due (every minute, queue billing)."""

from django.db import migrations

from billing.offer_defaults import CHARGE_TASK_NAME, PRO_OFFER, PRO_SLUG


def create(apps, schema_editor):
    Offer = apps.get_model("billing", "Offer")
    Offer.objects.update_or_create(slug=PRO_SLUG, defaults=PRO_OFFER)
    IntervalSchedule = apps.get_model("django_celery_beat", "IntervalSchedule")
    PeriodicTask = apps.get_model("django_celery_beat", "PeriodicTask")
    every_minute, _ = IntervalSchedule.objects.get_or_create(every=60, period="seconds")
    PeriodicTask.objects.update_or_create(
        name=CHARGE_TASK_NAME,
        defaults={"task": "billing.tasks.charge_due", "interval": every_minute, "queue": "billing", "enabled": True},
    )


def remove(apps, schema_editor):
    apps.get_model("django_celery_beat", "PeriodicTask").objects.filter(name=CHARGE_TASK_NAME).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("billing", "0001_initial"),
        ("django_celery_beat", "0019_alter_periodictasks_options"),
    ]

    operations = [migrations.RunPython(create, remove)]
