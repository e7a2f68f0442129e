from __future__ import annotations

from django.db import migrations

from chat.seed import ASSISTANTS

def seed(apps, schema_editor) -> None:  # noqa: ANN001
    Assistant = apps.get_model("chat", "Assistant")
    for data in ASSISTANTS:
        Assistant.objects.update_or_create(slug=data["slug"], defaults=data)


def unseed(apps, schema_editor) -> None:  # noqa: ANN001
    apps.get_model("chat", "Assistant").objects.filter(slug__in=[a["slug"] for a in ASSISTANTS]).delete()


class Migration(migrations.Migration):
    dependencies = [("chat", "0001_initial")]
    operations = [migrations.RunPython(seed, unseed)]
