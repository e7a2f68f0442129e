"""Traffic for bench_inference: prompts of a chosen size, a small knowledge collection, and a bounded
run of concurrent clients mixing request classes, with its per-class summary.

Prompts are passages of CPython's own documentation (`pydoc_data.topics`, always installed), cut to
about the asked number of tokens; every request gets a different passage, so a server's prompt cache
only ever reuses the system prompt, as with real users. Plans are seeded by (client, index), so the
same run can be replayed against Parley and against the llama-server peer.
"""

from __future__ import annotations

import pydoc_data.topics
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache

from common.bench import median, percentile
from inference.bench_stack import StreamResult

# The classes of the mixed run and the sampling temperature each one uses in Parley.
CLASS_TEMPERATURE = {"ws": 0.5, "v1": 0.7, "knowledge": 0.1}
CLASSES = tuple(CLASS_TEMPERATURE)
# Measured with Qwen2.5's tokenizer over these topics: about 4.4 characters per token.
CHARS_PER_TOKEN = 4.4
SHORT_TOKENS = (50, 200)
LONG_TOKENS = (400, 1000)
SYSTEM_PROMPT = "You are a helpful assistant."
BENCH_ASSISTANT_PROMPT = "You are Parley, a helpful, concise assistant. Answer clearly and briefly."
# Topics the knowledge collection holds, and questions each of them answers.
KNOWLEDGE_TOPICS = ("with", "try", "for", "while", "if", "lambda", "pass", "del", "return", "raise", "global",
                    "assert", "break", "class", "function", "import")
KNOWLEDGE_QUESTIONS = (
    "Which statement wraps a block with methods defined by a context manager?",
    "How do I specify exception handlers and cleanup code for a group of statements?",
    "How do I iterate over the elements of a list or another iterable?",
    "How do I repeat execution as long as an expression is true?",
    "How do I run code only when a condition holds, with elif and else branches?",
    "How do I create a small anonymous function?",
    "How do I delete a name binding or remove items from a list?",
    "How does a function give back a value to its caller?",
    "How do I re-raise the exception that is currently being handled?",
    "How do I insert debugging assertions into a program?",
    "How do I leave the nearest enclosing loop early?",
    "How does the import statement find and load a module?",
)
COLLECTION_NAME = "Bench: Python statements"
# Bounds of a run, whatever the clock says: a client stops after this many requests.
MAX_REQUESTS_PER_CLIENT = 400
JOIN_GRACE_SECONDS = 240.0


@cache
def _corpus() -> str:
    topics = pydoc_data.topics.topics
    return "\n\n".join(" ".join(topics[name].split()) for name in sorted(topics))


def passage(rng: random.Random, tokens: int) -> str:
    """About `tokens` tokens of documentation text, from a random place."""
    chars = int(tokens * CHARS_PER_TOKEN)
    corpus = _corpus()
    start = rng.randrange(0, len(corpus) - chars)
    return corpus[start:start + chars]


@dataclass(frozen=True)
class Planned:
    """One request of a run: its class, its prompt and its sampling temperature."""

    cls: str
    size: str  # "short" or "long" (the user text; the system prompt adds a few tokens)
    tokens: int  # the size asked for
    text: str  # the user message (for knowledge: the question)
    temperature: float
    context: str = ""  # for a knowledge request replayed as plain chat: the sources

    def messages(self, system: str = SYSTEM_PROMPT) -> list[dict[str, str]]:
        """As a plain chat request (the /v1 replay of every class, and the peer)."""
        if self.cls == "knowledge":
            system = ("You answer questions using only the numbered sources below. After each fact, cite its "
                      f"source as [n].\n\nSources:\n\n{self.context}")
        elif self.cls == "ws":
            system = BENCH_ASSISTANT_PROMPT
        return [{"role": "system", "content": system}, {"role": "user", "content": self.text}]


def plan(client: int, index: int, *, seed: int = 0, scale: float = 1.0) -> Planned:
    """The index-th request of a client: classes rotate, and sizes alternate short and long, so every
    (class, size) pair shows up in the first requests of an 8-client run, even a 10-second one."""
    cls = CLASSES[(client + index) % len(CLASSES)]
    size = "short" if (client // len(CLASSES) + index) % 2 == 0 else "long"
    return plan_class(cls, size, seed * 1_000_003 + client * 10_007 + index, scale=scale)


def plan_class(cls: str, size: str, number: int, *, scale: float = 1.0) -> Planned:
    """A request of a given class and size; `number` seeds its passage. `scale` shrinks every prompt (a smoke
    run: the same mix, less prefill)."""
    rng = random.Random(number)
    if cls == "knowledge":
        question = KNOWLEDGE_QUESTIONS[number % len(KNOWLEDGE_QUESTIONS)]
        # Five retrieved passages of about 120 tokens: the size the knowledge answer's prompt has.
        context = "\n\n".join(f"[{n}] {passage(rng, max(10, int(120 * scale)))}" for n in range(1, 6))
        return Planned(cls, "long", int(600 * scale), question, CLASS_TEMPERATURE[cls], context=context)
    low, high = SHORT_TOKENS if size == "short" else LONG_TOKENS
    tokens = max(10, int(rng.randint(low, high) * scale))
    text = f"Summarize this passage from the Python documentation in two sentences.\n\n{passage(rng, tokens)}"
    return Planned(cls, size, tokens, text, CLASS_TEMPERATURE[cls])


def knowledge_seed(user: object) -> object:
    """A collection of documentation topics owned by the bench user, ingested in this process (once)."""
    from django.core.files.base import ContentFile

    from knowledge.models import Collection, Document
    from knowledge.services import collection_create, document_create_from_file, document_ingest

    collection = (Collection.objects.filter(owner_user=user, name=COLLECTION_NAME).order_by("pk").first()
                  or collection_create(user=user, name=COLLECTION_NAME))
    topics = pydoc_data.topics.topics
    for name in KNOWLEDGE_TOPICS:
        text = topics[name][:4000]
        document, _ = document_create_from_file(
            user=user, collection=collection, file=ContentFile(text.encode(), name=f"{name}.txt"),
            title=f"The {name} statement", enqueue=False)
        if document.status != Document.Status.READY:
            document_ingest(document_id=document.pk, in_process=True)
    return collection


# --------------------------------------------------------------------------- a run


@dataclass
class Sample:
    planned: Planned
    result: StreamResult
    client: int


@dataclass
class Run:
    """A run's samples and its clock: the window in which clients started requests, and the end of the
    drain (the last request under way at the deadline finishing)."""

    samples: list[Sample]
    started: float  # time.perf_counter() values
    deadline: float
    drained: float


def traffic_run(*, clients: int, seconds: float, send: Callable[[int, Planned], StreamResult],
                make: Callable[[int, int], Planned], on_thread_end: Callable[[], None] | None = None,
                requests_per_client: int = MAX_REQUESTS_PER_CLIENT) -> Run:
    """`clients` threads sending back to back for `seconds` (no new request after that; the ones under
    way finish), at most `requests_per_client` each."""
    samples: list[Sample] = []
    lock = threading.Lock()
    started = time.perf_counter()
    deadline = started + seconds

    def client(number: int) -> None:
        try:
            for index in range(requests_per_client):
                if time.perf_counter() >= deadline:
                    break
                planned = make(number, index)
                try:
                    result = send(number, planned)
                except Exception as exc:  # noqa: BLE001 - a client error is a counted error, not a crash
                    result = StreamResult(started=time.perf_counter(), error=f"{exc.__class__.__name__}: {exc}")
                    result.end = result.started
                with lock:
                    samples.append(Sample(planned, result, number))
        finally:
            if on_thread_end is not None:
                on_thread_end()

    threads = [threading.Thread(target=client, args=(n,), name=f"bench-client-{n}", daemon=True)
               for n in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=max(1.0, deadline - time.perf_counter()) + JOIN_GRACE_SECONDS)
    with lock:
        done = list(samples)
    ends = [s.result.end for s in done if s.result.end]
    return Run(done, started, deadline, max(ends) if ends else deadline)


def _tokens_in_window(result: StreamResult, start: float, end: float) -> float:
    """Tokens of a reply that reached the client between start and end: its text chunks in the window,
    scaled by tokens per chunk (1.0 at these speeds); a non-streamed reply counts if it ended inside."""
    if not result.ok:
        return 0.0
    if not result.streamed:
        return float(result.tokens) if result.end is not None and start <= result.end <= end else 0.0
    if not result.chunk_times:
        return 0.0
    inside = sum(1 for t in result.chunk_times if start <= t <= end)
    return inside * (result.tokens / len(result.chunk_times) if result.tokens else 1.0)


def traffic_summary(run: Run, *, prefix: str) -> dict[str, float]:
    """Per class and size: TTFT p50/p99, longest gap, errors, processed ÷ submitted; overall tokens/s.

    Knowledge answers are not streamed: their TTFT is the worker's (its usage row), and they have no gaps.
    Tokens/s is the steady state: tokens that arrived inside the window while all clients were sending,
    over its length. Dividing all tokens by the time until the last reply finished would mix in the drain,
    whose length depends on which long prompts happened to be under way at the deadline.
    Every key is always present (NaN when a run had no such request) so the JSON's shape is fixed."""
    nan = float("nan")
    samples = run.samples
    out: dict[str, float] = {f"{prefix}_requests": len(samples)}
    ok = [s for s in samples if s.result.ok]
    for cls in CLASSES:
        mine = [s for s in samples if s.planned.cls == cls]
        for size in (("long",) if cls == "knowledge" else ("short", "long")):
            ttfts = [s.result.ttft_ms for s in mine if s.result.ok and s.planned.size == size]
            ttfts = [t for t in ttfts if t == t]  # drop NaN (a knowledge row not found)
            out[f"{prefix}_{cls}_{size}_ttft_p50_ms"] = percentile(ttfts, 50)
            out[f"{prefix}_{cls}_{size}_ttft_p99_ms"] = percentile(ttfts, 99)
        gaps = [s.result.max_gap_ms for s in mine if s.result.ok and s.result.chunks > 1]
        out[f"{prefix}_{cls}_max_gap_ms"] = max(gaps) if gaps else (nan if cls != "knowledge" else 0.0)
        out[f"{prefix}_{cls}_errors"] = sum(1 for s in mine if not s.result.ok)
        out[f"{prefix}_{cls}_requests"] = len(mine)
        counted = [s for s in mine if s.result.processed is not None and s.result.prompt_tokens]
        submitted = sum(s.result.prompt_tokens for s in counted)
        out[f"{prefix}_{cls}_processed_ratio"] = (sum(s.result.processed for s in counted) / submitted
                                                 if submitted else nan)
    gaps = [s.result.max_gap_ms for s in ok if s.result.chunks > 1]
    out[f"{prefix}_max_gap_ms"] = max(gaps) if gaps else nan
    out[f"{prefix}_errors"] = sum(1 for s in samples if not s.result.ok)
    window = run.deadline - run.started
    out[f"{prefix}_tokens_per_s"] = (sum(_tokens_in_window(s.result, run.started, run.deadline) for s in samples)
                                     / window if window > 0 else nan)
    wall = run.drained - run.started
    out[f"{prefix}_tokens_per_s_with_drain"] = sum(s.result.tokens for s in ok) / wall if wall > 0 else nan
    counted = [s for s in samples if s.result.processed is not None and s.result.prompt_tokens]
    submitted = sum(s.result.prompt_tokens for s in counted)
    out[f"{prefix}_processed_ratio"] = (sum(s.result.processed for s in counted) / submitted
                                        if submitted else nan)
    out[f"{prefix}_prompt_tokens_p50"] = median([s.result.prompt_tokens for s in ok if s.result.prompt_tokens])
    out[f"{prefix}_wall_s"] = wall
    return out


def first_error(samples: list[Sample]) -> str:
    for sample in samples:
        if not sample.result.ok:
            return f"{sample.planned.cls}/{sample.planned.size}: {sample.result.error}"
    return ""
