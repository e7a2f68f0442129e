"""Chunks carry their document's title and nearest heading, weighted in the full-text vector.

Django cannot alter a generated column, so the vector (and its GIN index) is dropped and added
again with the new expression; existing chunks get their document's title first, so the keyword
leg weighs it at once (their embeddings gain the title when the document is ingested again).
"""

import django.contrib.postgres.indexes
import django.contrib.postgres.search
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ("knowledge", "0001_initial"),
    ]

    operations = [
        migrations.AddField(
            model_name="chunk",
            name="title",
            field=models.CharField(blank=True, db_default="", max_length=300),
        ),
        migrations.AddField(
            model_name="chunk",
            name="heading",
            field=models.CharField(blank=True, db_default="", max_length=300),
        ),
        migrations.RunSQL(
            "UPDATE knowledge_chunk c SET title = d.title FROM knowledge_document d WHERE d.id = c.document_id",
            reverse_sql=migrations.RunSQL.noop,
        ),
        migrations.RemoveIndex(model_name="chunk", name="knowledge_chunk_search_gin"),
        migrations.RemoveField(model_name="chunk", name="search_vector"),
        migrations.AddField(
            model_name="chunk",
            name="search_vector",
            field=models.GeneratedField(
                db_persist=True,
                expression=django.contrib.postgres.search.CombinedSearchVector(
                    django.contrib.postgres.search.CombinedSearchVector(
                        django.contrib.postgres.search.SearchVector("title", config="english", weight="A"),
                        "||",
                        django.contrib.postgres.search.SearchVector("heading", config="english", weight="B"),
                        django.contrib.postgres.search.SearchConfig("english"),
                    ),
                    "||",
                    django.contrib.postgres.search.SearchVector("text", config="english", weight="D"),
                    django.contrib.postgres.search.SearchConfig("english"),
                ),
                output_field=django.contrib.postgres.search.SearchVectorField(),
            ),
        ),
        migrations.AddIndex(
            model_name="chunk",
            index=django.contrib.postgres.indexes.GinIndex(fields=["search_vector"], name="knowledge_chunk_search_gin"),
        ),
    ]
