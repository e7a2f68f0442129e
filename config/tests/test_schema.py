from __future__ import annotations

import pytest
from openapi_spec_validator import validate

pytestmark = pytest.mark.django_db


def test_openapi_schema_is_valid_and_lists_the_api(client):
    response = client.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")

    assert response.status_code == 200
    schema = response.json()
    validate(schema)
    assert "/api/me/" in schema["paths"]
    for path in ("/v1/chat/completions", "/v1/embeddings", "/v1/audio/transcriptions", "/v1/audio/speech",
                 "/v1/models", "/api/usage/"):
        assert path in schema["paths"]


def test_swagger_ui_is_served_from_local_static_files(client):
    page = client.get("/api/docs/")
    assert page.status_code == 200
    assert b"/static/vendor/swagger-ui-dist/swagger-ui-bundle.js" in page.content

    bundle = client.get("/static/vendor/swagger-ui-dist/swagger-ui-bundle.js")
    assert bundle.status_code == 200
