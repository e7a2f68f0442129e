from __future__ import annotations

from django.db import migrations, models

from chat.seed import ASSISTANTS, assistant_fields


def seed(apps, schema_editor) -> None:  # noqa: ANN001
    """The legal assistant, and the tools of the HR and IT ones, on databases seeded before them."""
    Assistant = apps.get_model("chat", "Assistant")
    for data in ASSISTANTS:
        Assistant.objects.update_or_create(slug=data["slug"], defaults=assistant_fields(data, Assistant))


def unseed(apps, schema_editor) -> None:  # noqa: ANN001
    apps.get_model("chat", "Assistant").objects.filter(slug="legal", conversations__isnull=True).delete()


class Migration(migrations.Migration):

    dependencies = [
        ('chat', '0008_conversation_knowledge_collections'),
    ]

    operations = [
        migrations.AddField(
            model_name='assistant',
            name='tools',
            field=models.JSONField(blank=True, default=list, help_text='Built-in tools it may call: knowledge_search, webhook_notify, send_email.'),
        ),
        migrations.RunPython(seed, unseed),
    ]
