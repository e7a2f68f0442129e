"""Grant the new `account:read` scope (GET /api/me/) to keys that held every scope before it.

Keys made with the default "all scopes" stored the list as it was then, so without this they
would lose /api/me/, which they could read before scopes were enforced there. Keys someone
narrowed on purpose stay narrow.
"""

from __future__ import annotations

from django.db import migrations

# Frozen here: accounts.apikeys.SCOPES will keep growing, this migration must not.
SCOPES_BEFORE = ["inference", "knowledge", "billing:read", "usage:read"]
NEW_SCOPE = "account:read"


def grant_account_read(apps, schema_editor) -> None:
    ApiKey = apps.get_model("accounts", "ApiKey")
    keys = list(ApiKey.objects.filter(scopes__contains=SCOPES_BEFORE).exclude(scopes__contains=[NEW_SCOPE])
                .only("pk", "scopes"))
    for key in keys:
        key.scopes = [*key.scopes, NEW_SCOPE]
    ApiKey.objects.bulk_update(keys, ["scopes"], batch_size=500)


def revoke_account_read(apps, schema_editor) -> None:
    ApiKey = apps.get_model("accounts", "ApiKey")
    keys = list(ApiKey.objects.filter(scopes__contains=[NEW_SCOPE]).only("pk", "scopes"))
    for key in keys:
        key.scopes = [scope for scope in key.scopes if scope != NEW_SCOPE]
    ApiKey.objects.bulk_update(keys, ["scopes"], batch_size=500)


class Migration(migrations.Migration):
    dependencies = [
        ("accounts", "0002_apikey"),
    ]

    operations = [
        migrations.RunPython(grant_account_read, revoke_account_read),
    ]
