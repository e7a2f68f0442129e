from __future__ import annotations

from accounts.models import ApiKey, User
from accounts.services import apikey_create
from accounts.tests.factories import user_make
from inference.models import ModelSpec
from inference.services import modelspec_register, route_set


def api_key_make(*, user: User | None = None, **limits: int | None) -> tuple[ApiKey, str]:
    return apikey_create(user=user or user_make(), name="test key", **limits)


def broken_chat_route(alias: str = "chat-broken-first") -> ModelSpec:
    """A route whose first model cannot load (its weights are missing), then SmolLM2."""
    broken = modelspec_register(name="broken-chat", defaults={
        "task": "chat", "backend": "ctranslate2", "source": "/nonexistent/parley/broken-model",
        "params": {"context_length": 32768},
    })
    route_set(alias=alias, task="chat", spec_names=["broken-chat", "smollm2-135m"])
    return broken
