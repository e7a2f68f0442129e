"""Plans as data: the free plan and Parley Pro's, with concrete limits; the offer grants a plan instead
of a free-form entitlements JSON; the Pro terms say the grace period comes once per customer."""

import django.db.models.deletion
from django.db import migrations, models

from billing.offer_defaults import FREE_PLAN, PRO_PLAN, PRO_SLUG, PRO_TERMS


def seed(apps, schema_editor):
    Plan = apps.get_model("billing", "Plan")
    Offer = apps.get_model("billing", "Offer")
    Plan.objects.update_or_create(slug="free", defaults=FREE_PLAN)
    pro, _ = Plan.objects.update_or_create(slug="pro", defaults=PRO_PLAN)
    Offer.objects.filter(slug=PRO_SLUG).update(plan=pro, terms_text=PRO_TERMS, terms_version="2026-12-03")


class Migration(migrations.Migration):

    dependencies = [
        ('billing', '0002_parley_pro_and_schedule'),
    ]

    operations = [
        migrations.CreateModel(
            name='Plan',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('created_at', models.DateTimeField(auto_now_add=True, db_index=True)),
                ('updated_at', models.DateTimeField(auto_now=True)),
                ('slug', models.SlugField(max_length=60, unique=True)),
                ('name', models.CharField(max_length=120)),
                ('summary', models.CharField(blank=True, max_length=300)),
                ('position', models.PositiveSmallIntegerField(default=0, help_text='Order on the pricing table.')),
                ('requests_per_minute', models.PositiveIntegerField()),
                ('tokens_per_day', models.PositiveIntegerField(help_text='Chat tokens (prompt and reply) per day.')),
                ('voice_minutes_per_day', models.PositiveIntegerField(help_text='Minutes of speech transcribed per day.')),
                ('speech_characters_per_day', models.PositiveIntegerField(help_text='Characters spoken back per day.')),
                ('knowledge_documents', models.PositiveIntegerField(help_text='Documents a user may keep.')),
                ('knowledge_megabytes', models.PositiveIntegerField(help_text='Megabytes of documents a user may keep.')),
                ('api_keys', models.PositiveIntegerField(help_text='Active API keys a user may hold.')),
                ('max_tokens_per_reply', models.PositiveIntegerField()),
            ],
            options={
                'ordering': ['position', 'id'],
            },
        ),
        migrations.RemoveField(
            model_name='offer',
            name='entitlements',
        ),
        migrations.AddField(
            model_name='offer',
            name='plan',
            field=models.ForeignKey(null=True, on_delete=django.db.models.deletion.PROTECT, related_name='offers', to='billing.plan'),
        ),
        migrations.RunPython(seed, migrations.RunPython.noop),
    ]
