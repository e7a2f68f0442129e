"""Beat schedules for product analytics: the hourly alert check (5 minutes past, so the hour's last
requests have been counted) and the nightly retention prune."""

from django.db import migrations

ALERTS_TASK_NAME = "onboarding: analytics alerts for the last hour"
PRUNE_TASK_NAME = "onboarding: delete analytics events past retention"


def forwards(apps, schema_editor):
    CrontabSchedule = apps.get_model("django_celery_beat", "CrontabSchedule")
    PeriodicTask = apps.get_model("django_celery_beat", "PeriodicTask")
    hourly, _ = CrontabSchedule.objects.get_or_create(minute="5", hour="*", day_of_week="*", day_of_month="*",
                                                      month_of_year="*", timezone="UTC")
    nightly, _ = CrontabSchedule.objects.get_or_create(minute="30", hour="3", day_of_week="*", day_of_month="*",
                                                       month_of_year="*", timezone="UTC")
    PeriodicTask.objects.update_or_create(
        name=ALERTS_TASK_NAME,
        defaults={"task": "onboarding.tasks.analytics_alerts_check", "crontab": hourly, "interval": None,
                  "queue": "default", "enabled": True},
    )
    PeriodicTask.objects.update_or_create(
        name=PRUNE_TASK_NAME,
        defaults={"task": "onboarding.tasks.analytics_events_prune", "crontab": nightly, "interval": None,
                  "queue": "default", "enabled": True},
    )


def backwards(apps, schema_editor):
    apps.get_model("django_celery_beat", "PeriodicTask").objects.filter(
        name__in=[ALERTS_TASK_NAME, PRUNE_TASK_NAME]).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("onboarding", "0003_analytics"),
        ("django_celery_beat", "0019_alter_periodictasks_options"),
    ]

    operations = [migrations.RunPython(forwards, backwards)]
