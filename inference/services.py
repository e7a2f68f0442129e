"""Writes for the model registry and the usage ledger."""

from __future__ import annotations

from decimal import Decimal

from django.db import transaction

from inference.models import ModelSpec, Route, RouteEntry, UsageRecord


def usage_cost(
    *, spec: ModelSpec | None, prompt_tokens: int = 0, completion_tokens: int = 0, audio_seconds: float = 0,
    characters: int = 0,
) -> Decimal:
    if spec is None:
        return Decimal(0)
    thousand = Decimal(1000)
    return (
        spec.price_input_per_1k * prompt_tokens / thousand
        + spec.price_output_per_1k * completion_tokens / thousand
        + spec.price_per_audio_second * Decimal(str(round(audio_seconds, 3)))
        + spec.price_per_1k_chars * characters / thousand
    ).quantize(Decimal("0.00000001"))


def usage_record_create(
    *, request_id: str, user_id: int, api_key_id: int | None, spec_name: str, route_alias: str, task: str,
    prompt_tokens: int = 0, completion_tokens: int = 0, audio_seconds: float = 0, characters: int = 0,
    ttft_ms: float | None = None, duration_ms: float = 0, outcome: str = UsageRecord.Outcome.OK, error: str = "",
    worker: str = "",
) -> UsageRecord:
    """One ledger row per request attempt; a retried task with the same id does not add a second."""
    spec = ModelSpec.objects.filter(name=spec_name).first()
    record, _ = UsageRecord.objects.get_or_create(
        request_id=request_id,
        defaults={
            "user_id": user_id, "api_key_id": api_key_id, "spec": spec, "model_name": spec_name,
            "route_alias": route_alias, "task": task, "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens, "audio_seconds": audio_seconds, "characters": characters,
            "ttft_ms": ttft_ms, "duration_ms": duration_ms, "outcome": outcome, "error": error[:2000],
            "worker": worker,
            "cost": usage_cost(spec=spec, prompt_tokens=prompt_tokens, completion_tokens=completion_tokens,
                               audio_seconds=audio_seconds, characters=characters),
        },
    )
    return record


@transaction.atomic
def modelspec_register(*, name: str, defaults: dict) -> ModelSpec:
    """Create or update a spec by name (used by models_install for the bundled models)."""
    spec, _ = ModelSpec.objects.update_or_create(name=name, defaults=defaults)
    return spec


@transaction.atomic
def route_set(*, alias: str, task: str, spec_names: list[str], description: str = "") -> Route:
    """Make `alias` route to the given specs, in order; specs that don't exist are left out."""
    route, _ = Route.objects.update_or_create(alias=alias, defaults={"task": task, "description": description})
    specs = {spec.name: spec for spec in ModelSpec.objects.filter(name__in=spec_names)}
    RouteEntry.objects.filter(route=route).delete()
    RouteEntry.objects.bulk_create(
        [RouteEntry(route=route, spec=specs[name], position=i) for i, name in enumerate(spec_names) if name in specs]
    )
    return route


def modelspecs_set_enabled(*, names: list[str], enabled: bool) -> int:
    return ModelSpec.objects.filter(name__in=names).update(enabled=enabled)


def bundled_models_register(*, names: list[str] | None = None) -> list[ModelSpec]:
    """Register prepared bundled models (those with a manifest) and the routes between them."""
    from inference.catalog import BUNDLED, ROUTES
    from inference.install import model_manifest

    registered = []
    for name, model in BUNDLED.items():
        if names is not None and name not in names:
            continue
        manifest = model_manifest(name)
        if manifest is None:
            continue
        registered.append(modelspec_register(name=name, defaults={
            "task": model.task, "backend": model.backend, "source": f"package:{name}",
            "sha256": manifest["sha256"], "quantization": model.quantization, "params": dict(model.params),
            "description": model.description, "price_input_per_1k": model.price_input_per_1k,
            "price_output_per_1k": model.price_output_per_1k, "price_per_audio_second": model.price_per_audio_second,
            "price_per_1k_chars": model.price_per_1k_chars,
        }))
    for alias, chain in ROUTES.items():
        task = BUNDLED[chain[0]].task
        route_set(alias=alias, task=task, spec_names=chain, description=f"{task} route: " + " → ".join(chain))
    return registered
