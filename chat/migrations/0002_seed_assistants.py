from __future__ import annotations

from django.db import migrations

from chat.seed import ASSISTANTS, assistant_fields


def seed(apps, schema_editor) -> None:  # noqa: ANN001
    Assistant = apps.get_model("chat", "Assistant")
    for data in ASSISTANTS:
        # Only the fields this historical model has: the seed gained fields (tools) in later migrations.
        Assistant.objects.update_or_create(slug=data["slug"], defaults=assistant_fields(data, Assistant))


def unseed(apps, schema_editor) -> None:  # noqa: ANN001
    apps.get_model("chat", "Assistant").objects.filter(slug__in=[a["slug"] for a in ASSISTANTS]).delete()


class Migration(migrations.Migration):
    dependencies = [("chat", "0001_initial")]
    operations = [migrations.RunPython(seed, unseed)]
