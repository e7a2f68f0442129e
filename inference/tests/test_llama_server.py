"""llama-server as the chat engine, the fixed CTranslate2 batcher, model variants and the engine cache.

Everything runs for real: the llama-server binary that `models_install` builds into var/engines, the
bundled SmolLM2 135M GGUF (fast) and the joined Qwen 0.5B GGUF where a real answer matters.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
from dataclasses import replace
from pathlib import Path

import openai
import pytest

from common.stack import wait_for
from inference import engines
from inference.backends import BackendError, GenerationChunk, GenerationRequest, SpecConfig, backend_class
from inference.backends.llama_server import LlamaServerChatBackend
from inference.catalog import BUNDLED
from inference.install import GGUF, model_prepare

pytestmark = pytest.mark.engine  # every test here runs or inspects the llama-server build

SMOL = "smollm2-135m"
QWEN = "qwen2.5-coder-0.5b"
# Mixed sampling settings, the way several users' requests arrive at once.
MIXED = [(0.1, 1.0), (0.5, 0.9), (0.7, 0.8), (0.1, 0.95), (0.7, 1.0), (0.5, 0.8)]
# Sentences to pad prompts with: ~10 tokens each, so prompts span about 50 to 1,000 tokens.
FILLER = "The river carried small boats past the old mill every morning. "
PROMPT_SENTENCES = [4, 20, 45, 100, 60, 10]


@pytest.fixture(scope="session")
def llama_server_binary() -> Path:
    # Built by `make test` (models_install) before pytest starts; a cold cache builds here (~8 minutes).
    return engines.llama_server_install()


def _gguf_spec(name: str, **params: object) -> SpecConfig:
    model = BUNDLED[name]
    variant = next(v for v in model.variants if v.artifact == GGUF)
    prepared = model_prepare(name, artifact=GGUF)
    return SpecConfig(name=name, task="chat", backend=variant.backend, source=f"package:{name}:{GGUF}",
                      sha256=prepared.sha256, quantization=variant.quantization,
                      params={**model.params, **variant.params, **params}, path=prepared.path)


def _server(name: str, **params: object) -> LlamaServerChatBackend:
    backend = LlamaServerChatBackend(_gguf_spec(name, **params), "cpu")
    backend.load()
    return backend


@pytest.fixture(scope="module")
def smol(llama_server_binary):
    backend = _server(SMOL)
    yield backend
    backend.unload()


@pytest.fixture(scope="module")
def qwen(llama_server_binary):
    backend = _server(QWEN)
    yield backend
    backend.unload()


def _collect(backend, request: GenerationRequest) -> tuple[str, GenerationChunk]:
    chunks = list(backend.generate(request))
    return "".join(c.text for c in chunks), chunks[-1]


def _mixed_requests(max_tokens: int) -> list[GenerationRequest]:
    requests = []
    for (temperature, top_p), sentences in zip(MIXED, PROMPT_SENTENCES, strict=True):
        text = FILLER * sentences + "Summarise the text above in one sentence."
        requests.append(GenerationRequest(messages=[{"role": "user", "content": text}], max_tokens=max_tokens,
                                          temperature=temperature, top_p=top_p))
    return requests


def _run_concurrently(backend, requests: list[GenerationRequest]) -> dict[int, tuple[str, GenerationChunk]]:
    results: dict[int, tuple[str, GenerationChunk]] = {}
    errors: list[BaseException] = []

    def run(i: int) -> None:
        try:
            results[i] = _collect(backend, requests[i])
        except BaseException as exc:  # noqa: BLE001 - re-raised by the test below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(requests))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(300)
    assert not errors, errors
    return results


# --------------------------------------------------------------------------- serving


def test_qwen_answers_through_llama_server(qwen):
    text, last = _collect(qwen, GenerationRequest(
        messages=[{"role": "user", "content": "What is the capital of France? Answer in one word."}],
        max_tokens=10, temperature=0))

    assert "Paris" in text
    assert last.finish_reason == "stop"
    assert last.prompt_tokens > 10 and 0 < last.completion_tokens <= 10
    assert 0 < last.prompt_tokens_processed <= last.prompt_tokens


def test_mixed_sampling_settings_all_finish_without_reprefill(smol):
    requests = _mixed_requests(max_tokens=48)

    results = _run_concurrently(smol, requests)

    assert sorted(results) == list(range(len(requests)))
    for text, last in results.values():
        assert text.strip()
        assert last.finish_reason in ("stop", "length")
        assert last.completion_tokens > 0
    prompts = [last.prompt_tokens for _, last in results.values()]
    assert min(prompts) < 100 and max(prompts) > 900  # the workload spans short and long prompts
    processed = sum(last.prompt_tokens_processed for _, last in results.values())
    assert processed / sum(prompts) <= 1.5


def test_stop_string_and_max_tokens(smol):
    _, last = _collect(smol, GenerationRequest(
        messages=[{"role": "user", "content": "Count from one to one hundred in words."}], max_tokens=5,
        temperature=0))
    assert last.finish_reason == "length" and last.completion_tokens == 5

    # A stop string any reply meets soon (the tiny model's wording varies with its repetition guards).
    text, last = _collect(smol, GenerationRequest(
        messages=[{"role": "user", "content": "Write two sentences about the sea."}],
        max_tokens=60, temperature=0, stop=[" "]))
    assert " " not in text.strip() and last.finish_reason == "stop" and last.completion_tokens < 60


def test_cancel_stops_the_stream_and_frees_the_slot(smol):
    seen: list[str] = []
    request = GenerationRequest(messages=[{"role": "user", "content": "Write a very long story about a dragon."}],
                                max_tokens=400, temperature=0.7, is_canceled=lambda: len(seen) >= 5)

    for chunk in smol.generate(request):
        if chunk.text:
            seen.append(chunk.text)
        last = chunk

    assert last.finish_reason == "canceled"
    assert last.completion_tokens < 60
    # The closed connection is how llama-server learns of it: the slot goes idle instead of writing 400 tokens.
    wait_for(lambda: smol.slots_busy() == 0, timeout=20, what="llama-server's slot to go idle")


def test_a_conversation_over_the_context_is_refused(smol):
    with pytest.raises(BackendError) as error:
        _collect(smol, GenerationRequest(messages=[{"role": "user", "content": "word " * 9000}], max_tokens=5))

    assert error.value.code == "context_length_exceeded"
    assert error.value.retryable is False
    assert "8192" in error.value.message


def test_waiting_requests_learn_their_place_in_line(llama_server_binary):
    backend = _server(SMOL, slots=1)
    try:
        positions: dict[int, list[int]] = {0: [], 1: [], 2: []}
        results: dict[int, GenerationChunk] = {}
        # The first request holds the only slot until both others are in line, so the order is known.
        release = threading.Event()

        def run(i: int) -> None:
            request = GenerationRequest(
                messages=[{"role": "user", "content": f"Write a short poem about the number {i}."}], max_tokens=16,
                on_queued=positions[i].append)
            for chunk in backend.generate(request):
                if i == 0:
                    release.wait(60)
                results[i] = chunk

        threads = [threading.Thread(target=run, args=(i,)) for i in range(3)]
        threads[0].start()
        wait_for(lambda: backend.gate.active == 1, timeout=30, what="the first request to take the slot")
        threads[1].start()
        wait_for(lambda: positions[1], timeout=30, what="the second request to queue")
        threads[2].start()
        wait_for(lambda: positions[2], timeout=30, what="the third request to queue")
        release.set()
        for thread in threads:
            thread.join(120)

        assert sorted(results) == [0, 1, 2]
        assert all(last.finish_reason in ("stop", "length") for last in results.values())
        assert positions == {0: [], 1: [1], 2: [2, 1]}
    finally:
        backend.unload()


# --------------------------------------------------------------------------- process lifecycle and failures


def test_the_engine_runs_nicer_than_the_worker_so_the_request_path_gets_a_core(smol):
    from inference.backends.llama_server import DEFAULT_NICE

    assert DEFAULT_NICE > 0
    engine = os.getpriority(os.PRIO_PROCESS, smol.process.pid)
    assert engine - os.getpriority(os.PRIO_PROCESS, 0) == min(DEFAULT_NICE, 19 - os.getpriority(os.PRIO_PROCESS, 0))


def test_unload_stops_the_subprocess(llama_server_binary):
    backend = _server(SMOL, slots=1)
    process = backend.process

    backend.unload()

    assert process.poll() is not None
    with pytest.raises(ProcessLookupError):
        os.kill(process.pid, 0)


def test_the_server_dies_with_its_parent(llama_server_binary, tmp_path):
    """A worker killed with SIGKILL leaves no llama-server behind (PR_SET_PDEATHSIG)."""
    script = tmp_path / "host.py"
    script.write_text(
        "import sys, threading\n"
        "from inference.tests.test_llama_server import _server\n"
        # Loaded from a thread that ends at once: the death signal must follow the process, not the thread.
        "holder = {}\n"
        "t = threading.Thread(target=lambda: holder.update(b=_server('smollm2-135m', slots=1)))\n"
        "t.start(); t.join()\n"
        "print(holder['b'].process.pid, flush=True)\n"
        "threading.Event().wait()\n"
    )
    root = Path(__file__).resolve().parents[2]
    host = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True, cwd=root,
                            env={**os.environ, "PYTHONPATH": str(root)})
    try:
        child = int(host.stdout.readline())
        os.kill(child, 0)  # alive while its parent is
        host.kill()
        host.wait()

        def gone() -> bool:
            try:
                os.kill(child, 0)
            except ProcessLookupError:
                return True
            # A zombie is gone for our purposes; it is reaped by init.
            return Path(f"/proc/{child}/stat").read_text().split()[2] == "Z"

        wait_for(gone, timeout=20, what="llama-server to exit after its parent was killed")
    finally:
        host.kill()


def test_a_missing_gguf_fails_to_load_with_the_path(llama_server_binary, tmp_path):
    spec = replace(_gguf_spec(SMOL), path=tmp_path / "nowhere.gguf")

    with pytest.raises(BackendError) as error:
        LlamaServerChatBackend(spec, "cpu").load()

    assert error.value.code == "load_failed"
    assert "nowhere.gguf" in error.value.message and "does not exist" in error.value.message


def test_a_corrupt_gguf_fails_to_load_with_the_server_log(llama_server_binary, tmp_path):
    corrupt = tmp_path / "corrupt.gguf"
    corrupt.write_bytes(b"GGUF" + os.urandom(4096))
    spec = replace(_gguf_spec(SMOL), path=corrupt)
    backend = LlamaServerChatBackend(spec, "cpu")

    with pytest.raises(BackendError) as error:
        backend.load()

    assert error.value.code == "load_failed"
    assert "exited" in error.value.message and "corrupt.gguf" in error.value.message
    assert len(error.value.message.splitlines()) > 1  # the server's own last words follow
    assert backend.process is None


# --------------------------------------------------------------------------- the fixed CTranslate2 batcher


def test_ctranslate2_batcher_mixed_settings_all_finish_within_the_prefill_budget():
    model = BUNDLED[SMOL]
    prepared = model_prepare(SMOL)
    spec = SpecConfig(name=SMOL, task="chat", backend="ctranslate2", source=f"package:{SMOL}",
                      quantization="int8", params=dict(model.params), path=prepared.path)
    backend = backend_class("ctranslate2")(spec, "cpu")
    backend.load()
    try:
        # Long enough that every group outlives its minimum slice while others wait.
        results = _run_concurrently(backend, _mixed_requests(max_tokens=64))
    finally:
        backend.unload()

    assert sorted(results) == list(range(len(MIXED)))
    for text, last in results.values():
        assert text.strip()
        assert last.finish_reason in ("stop", "length")
    processed = sum(last.prompt_tokens_processed for _, last in results.values())
    submitted = sum(last.prompt_tokens for _, last in results.values())
    assert submitted <= processed <= 1.5 * submitted


# --------------------------------------------------------------------------- variants


@pytest.mark.django_db
def test_switching_a_spec_to_its_ct2_variant_changes_what_loads(bundled_models, llama_server_binary):
    from inference.install import model_manifest
    from inference.models import ModelSpec
    from inference.services import modelspec_variant_activate

    spec = ModelSpec.objects.get(name=SMOL)
    assert spec.active_variant.name == "gguf-q4_1"  # llama-server is built, so the CPU default is the GGUF
    assert (spec.backend, spec.source) == ("llama_cpp", f"package:{SMOL}:gguf")
    assert spec.params["slots"] == 4

    spec = modelspec_variant_activate(spec=spec, variant=spec.variants.get(name="ct2-int8"))

    spec.refresh_from_db()
    assert (spec.backend, spec.source, spec.quantization) == ("ctranslate2", f"package:{SMOL}", "int8")
    assert spec.sha256 == model_manifest(SMOL)["sha256"] != model_manifest(SMOL, GGUF)["sha256"]
    assert "slots" not in spec.params  # the GGUF variant's overrides went with it
    assert spec.params["repeat_penalty"] == 1.3  # the model's own params stay


@pytest.mark.django_db
def test_a_variant_with_a_wrong_checksum_is_refused_at_load(bundled_models):
    from inference.models import ModelSpec
    from inference.runtime import ModelHost
    from inference.services import modelspec_variant_activate
    from inference.worker import spec_config

    spec = ModelSpec.objects.get(name=SMOL)
    variant = spec.variants.get(name="ct2-int8")
    variant.sha256 = "0" * 64  # as if the weights on disk were swapped after registration
    variant.save()
    modelspec_variant_activate(spec=spec, variant=variant)

    with pytest.raises(BackendError) as error:
        ModelHost().load(spec_config(SMOL))

    assert error.value.code == "checksum_mismatch"


# --------------------------------------------------------------------------- through the real worker


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_the_worker_serves_chat_from_llama_server(live_daphne, celery_worker, bundled_models):
    from inference.models import ModelSpec, UsageRecord
    from inference.tests.factories import api_key_make

    assert ModelSpec.objects.get(name=SMOL).backend == "llama_cpp"
    _, key = api_key_make()
    client = openai.OpenAI(base_url=live_daphne["url"] + "/v1", api_key=key, max_retries=0, timeout=120)

    stream = client.chat.completions.create(
        model=SMOL, max_tokens=16, temperature=0.3, stream=True, stream_options={"include_usage": True},
        messages=[{"role": "user", "content": "Name three colours."}])
    chunks = list(stream)

    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices).strip()
    assert chunks[-1].usage.completion_tokens > 0
    # The ledger row is written as the stream ends, so it may land just after the last chunk.
    wait_for(lambda: UsageRecord.objects.filter(model_name=SMOL, outcome="ok").exists(), timeout=20,
             what="the usage record of the streamed reply")
    # The worker's own llama-server child, not one started by this test process.
    children = subprocess.run(["pgrep", "-P", str(celery_worker["process"].pid), "-f", "llama-server"],
                              capture_output=True, text=True).stdout.split()
    assert children


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_use_this_variant_in_admin_switches_the_model_and_reloads_it(client, celery_worker, bundled_models):
    import time

    from accounts.tests.factories import staff_login, user_make
    from common.heartbeat import workers_alive
    from inference.models import ModelSpec

    spec = ModelSpec.objects.get(name=SMOL)
    variant = spec.variants.get(name="ct2-int8")
    url = f"/admin/inference/modelspec/{spec.pk}/variant/{variant.pk}/activate/"
    client.force_login(user_make(is_staff=False))
    assert client.post(url).status_code == 302  # to the admin login: not staff
    spec.refresh_from_db()
    assert spec.active_variant.name == "gguf-q4_1"

    staff_login(client, user_make(is_staff=True, is_superuser=True))
    page = client.get(f"/admin/inference/modelspec/{spec.pk}/change/").content.decode()
    assert "Use this variant" in page and "gguf-q4_1" in page and "ct2-float16" in page
    asked = time.time()
    response = client.post(url, follow=True)

    # Admin capitalises the first letter of a message.
    assert f"{SMOL} now runs as ct2-int8".lower() in response.content.decode().lower()
    spec.refresh_from_db()
    assert (spec.active_variant.name, spec.backend) == ("ct2-int8", "ctranslate2")

    def reloaded() -> bool:
        worker = next((w for w in workers_alive() if w["hostname"] == celery_worker["hostname"]), {})
        state = worker.get("models", {}).get(SMOL, {})
        return state.get("state") == "loaded" and state.get("loaded_at", 0) > asked

    wait_for(reloaded, timeout=120, what=f"the worker to reload {SMOL}")


# --------------------------------------------------------------------------- the engine cache


def test_a_second_install_returns_the_cache_without_building(llama_server_binary):
    manifest = engines.llama_server_manifest()
    stages: list[str] = []

    again = engines.llama_server_install(progress=lambda stage, fraction: stages.append(stage))

    assert again == llama_server_binary
    assert stages == ["cached"]
    assert engines.llama_server_manifest() == manifest  # same build, same timestamp
    assert manifest["sha256"] == engines.sha256_file(again)
    assert manifest["cmake_flags"] == list(engines.llama_server_cmake_flags())
    assert manifest["llama_cpp_python"] == engines.LLAMA_CPP_PYTHON_VERSION


def test_cmake_flags_follow_the_cpu():
    without_avx512 = engines.llama_server_cmake_flags(frozenset({"avx2", "fma", "f16c"}))
    with_avx512 = engines.llama_server_cmake_flags(
        frozenset({"avx2", "fma", "f16c", "avx512f", "avx512bw", "avx512vl", "avx512dq", "avx512cd", "avx512_vnni"}))

    assert "-DGGML_AVX512=OFF" in without_avx512 and "-DGGML_AVX512=ON" in with_avx512
    assert "-DGGML_AVX512_VNNI=ON" in with_avx512
    # AMX crashes the first completion even where the CPU reports it; the native build would turn it on.
    always = {"-DGGML_NATIVE=OFF", "-DGGML_AMX_TILE=OFF", "-DGGML_AMX_INT8=OFF", "-DBUILD_SHARED_LIBS=OFF"}
    for flags in (without_avx512, with_avx512):
        assert always <= set(flags)


def test_the_binary_is_self_contained(llama_server_binary):
    linked = subprocess.run(["ldd", str(llama_server_binary)], capture_output=True, text=True).stdout
    assert "libllama" not in linked and "libggml" not in linked


def test_a_tampered_binary_is_detected(llama_server_binary, tmp_path, monkeypatch):
    # On a copy of the cache, so the real one stays intact for the other tests.
    entry = engines.llama_server_dir()
    shutil.copytree(entry, tmp_path / entry.name)
    monkeypatch.setattr(engines, "ENGINES_DIR", tmp_path)
    binary = tmp_path / entry.name / "bin" / "llama-server"
    assert engines.llama_server_path() == binary

    with open(binary, "r+b") as f:
        f.seek(4096)
        byte = f.read(1)
        f.seek(4096)
        f.write(bytes([byte[0] ^ 0xFF]))

    assert engines.llama_server_path() is None
    with pytest.raises(engines.EngineInstallError, match="altered"):
        engines.llama_server_verify()
    assert json.loads((tmp_path / entry.name / engines.MANIFEST).read_text())["sha256"] != engines.sha256_file(binary)
