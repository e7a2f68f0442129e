"""Benchmark the bundled models through the full stack (HTTP/WebSocket → Daphne → Redis → gpu worker →
Channels), against two references measured in the same run:

- **direct**: the bare backend in a process of its own (inference.bench_direct), loaded as the worker
  loads it, with the worker's thread settings. It used to run inside this process, next to Django and
  the client threads, and decoded slower than the worker, so "delivered ÷ direct" read above 1.
- **peer**: llama.cpp's own llama-server on the same GGUF with stock flags, started here.

The direct, /v1 and peer requests alternate one at a time (never two at once), so drift on the machine
hits all three alike. Then concurrency, an idle baseline per request class, the mixed-traffic run of
WebSocket chat, /v1 streaming and knowledge answers, and the same mixed run replayed on the peer.

Tokens/s counts the server's `usage.completion_tokens` over the time between the first and the last
text chunk (inference.bench_stack explains why chunks are not tokens).
"""

from __future__ import annotations

import contextlib
import math
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from common.bench import as_json, median, percentile, table
from inference.bench_direct import DirectProcess, PeerServer
from inference.bench_stack import BenchStack, StreamResult, backend_direct, child_env, sse_chat
from inference.bench_traffic import (
    BENCH_ASSISTANT_PROMPT,
    SYSTEM_PROMPT,
    Planned,
    Run,
    first_error,
    knowledge_seed,
    plan,
    plan_class,
    traffic_run,
    traffic_summary,
)

TTS_TEXT = ("Parley answers from your own documents and speaks the answer back to you, running on "
            "hardware you control, with no cloud.")  # 120 characters
CHAT_MODEL = "qwen2.5-coder-0.5b"
EMBED_MODEL = "all-minilm-l6-v2"
# Short questions for the paired runs: a new prompt each run, the same one for direct, /v1 and peer.
QUESTIONS = (
    "Explain in a few sentences why the sky is blue.",
    "Explain in a few sentences how a refrigerator keeps food cold.",
    "Explain in a few sentences why leaves change colour in autumn.",
    "Explain in a few sentences how a bicycle stays upright.",
    "Explain in a few sentences why bread rises.",
    "Explain in a few sentences how vaccines train the immune system.",
    "Explain in a few sentences why the sea is salty.",
    "Explain in a few sentences how a compass finds north.",
    "Explain in a few sentences why we have seasons.",
    "Explain in a few sentences how a microwave oven heats food.",
    "Explain in a few sentences why ice floats on water.",
    "Explain in a few sentences how bees make honey.",
)
STORY_TOPICS = ("a lighthouse keeper", "a lost robot", "a desert caravan", "a clockmaker", "a mountain village",
                "a submarine crew", "a library at night", "a travelling circus", "a winter market",
                "an old ferry", "a rooftop garden", "a radio operator", "a glass blower", "a night train",
                "a beekeeper", "a map maker")
MIXED_TEMPERATURES = (0.1, 0.5, 0.7, 0.9)
CONCURRENCY_MAX_TOKENS = 64
MIXED_MAX_TOKENS = 64
# Requests each client sends in one part of the mixed replay on /v1 and the peer (a fixed piece of work).
PEER_REPLAY_REQUESTS = 2
# Targets (see the README): judged in _rows and printed next to each figure.
OVERHEAD_P50_MS, OVERHEAD_P99_MS = 15.0, 40.0
SHORT_P99_OVER_IDLE_P50 = 4.0
MAX_GAP_MS = 2000.0
PROCESSED_RATIO = 1.5
PEER_OVERHEAD_MS, PEER_RATIO = 15.0, 0.95

# The JSON's keys: always present, numeric (NaN only where a run had no such request).
CHAT_KEYS = [
    "llm_direct_ttft_p50_ms", "llm_direct_ttft_p99_ms", "llm_api_ttft_p50_ms", "llm_api_ttft_p99_ms",
    "llm_api_overhead_p50_ms", "llm_api_overhead_p99_ms", "llm_engine_ttft_p50_ms", "llm_api_overhead_paired_p50_ms",
    "llm_api_overhead_paired_p99_ms", "llm_direct_tokens_per_s", "llm_api_tokens_per_s",
    "llm_api_delivered_ratio", "llm_api_e2e_tokens_per_s", "llm_api_chunks_per_s", "llm_api_chunks_per_token",
    "llm_api_usage_per_text_token", "llm_api_aggregate_tps_1", "llm_api_aggregate_tps_4", "llm_api_aggregate_tps_8",
    "llm_api_aggregate_ratio_4_vs_1", "llm_api_aggregate_tps_4_mixed_temp", "llm_api_aggregate_ratio_4_mixed_vs_1",
]
IDLE_KEYS = [f"idle_{c}_{s}_ttft_p50_ms" for c in ("ws", "v1") for s in ("short", "long")] + [
    "idle_knowledge_long_ttft_p50_ms"]
MIXED_KEYS = [
    "mixed_seconds", "mixed_clients", "mixed_requests", "mixed_errors", "mixed_tokens_per_s", "mixed_max_gap_ms",
    "mixed_processed_ratio", "mixed_wall_s", "mixed_tokens_per_s_with_drain",
    *[f"mixed_{c}_{s}_ttft_{p}_ms" for c in ("ws", "v1") for s in ("short", "long") for p in ("p50", "p99")],
    "mixed_knowledge_long_ttft_p50_ms", "mixed_knowledge_long_ttft_p99_ms",
    *[f"mixed_{c}_{k}" for c in ("ws", "v1", "knowledge") for k in ("errors", "requests", "processed_ratio")],
    "mixed_ws_max_gap_ms", "mixed_v1_max_gap_ms",
    "mixed_ws_short_p99_over_idle_p50", "mixed_v1_short_p99_over_idle_p50",
]
PEER_KEYS = [
    "peer_idle_short_ttft_p50_ms", "peer_idle_long_ttft_p50_ms", "peer_prefill_tokens_per_s",
    "peer_ttft_p50_ms", "peer_ttft_p99_ms", "peer_tokens_per_s", "peer_aggregate_tps_1",
    "peer_aggregate_tps_4_mixed_temp", "peer_parley_ttft_p50_ms", "peer_parley_ttft_p99_ms",
    "peer_parley_tokens_per_s", "parley_minus_peer_ttft_p50_ms", "parley_minus_peer_ttft_p99_ms",
    "parley_over_peer_ttft", "parley_over_peer_decode", "parley_over_peer_tps_4_mixed_temp",
    *[f"{who}_mixed_{k}" for who in ("peer", "parley_v1") for k in (
        "short_ttft_p50_ms", "short_ttft_p99_ms", "max_gap_ms", "tokens_per_s", "processed_ratio", "errors",
        "requests")],
    "parley_over_peer_mixed_tps", "parley_minus_peer_mixed_short_ttft_p50_ms",
]
AUDIO_KEYS = ["stt_tiny_3s_clip_ms", "stt_tiny_rtf", "stt_base_3s_clip_ms", "stt_base_rtf", "tts_first_chunk_ms",
              "tts_rtf"]
EMBED_KEYS = ["embed_sentences_per_s", "embed_single_query_ms"]


def figure_keys(*, audio: bool, peer: bool) -> list[str]:
    """Every key the JSON carries for a run with or without the audio and peer parts."""
    return (["runs", "peer_ran", "quick"] + CHAT_KEYS + IDLE_KEYS + MIXED_KEYS + (PEER_KEYS if peer else [])
            + (AUDIO_KEYS if audio else []) + EMBED_KEYS)


class Command(BaseCommand):
    help = ("Measure chat TTFT, decode and mixed traffic through the stack against the bare backend (own process) "
            "and llama-server on the same GGUF; STT, TTS and embeddings. Prints a table and JSON.")

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--model", default=CHAT_MODEL, help="The chat ModelSpec to measure.")
        parser.add_argument("--runs", type=int, default=20, help="Paired direct / API / peer chat runs.")
        parser.add_argument("--max-tokens", type=int, default=48)
        parser.add_argument("--clients", type=int, default=8, help="Concurrent clients in the mixed run.")
        parser.add_argument("--mixed-seconds", type=float, default=60.0)
        parser.add_argument("--peer-seconds", type=float, default=300.0,
                            help="Upper bound on each part of the mixed replay on Parley /v1 and on the peer "
                                 f"({PEER_REPLAY_REQUESTS} requests per client, Parley, peer, peer, Parley).")
        parser.add_argument("--no-peer", action="store_true", help="Skip the llama-server peer row.")
        parser.add_argument("--skip-audio", action="store_true")
        parser.add_argument("--quick", action="store_true",
                            help="A short smoke run: 3 paired runs, 6 s mixed, one request per client in the peer "
                                 "replay, short replies, prompts a quarter of their size.")
        parser.add_argument("--redis-db", type=int, default=2, help="Redis db of the bench's own stack.")
        parser.add_argument("--json-out", default="", help="Also write the JSON to this file.")

    def handle(self, *args: object, model: str, runs: int, max_tokens: int, clients: int, mixed_seconds: float,
               peer_seconds: float, no_peer: bool, skip_audio: bool, quick: bool, redis_db: int, json_out: str,
               **options: object) -> None:
        from inference.services import bundled_models_register, modelspec_bench_record

        if quick:
            runs, max_tokens = min(runs, 3), min(max_tokens, 16)
            mixed_seconds, peer_seconds = min(mixed_seconds, 6.0), min(peer_seconds, 6.0)
        self.quick = quick
        self.concurrency_tokens = 16 if quick else CONCURRENCY_MAX_TOKENS
        self.mixed_tokens = 16 if quick else MIXED_MAX_TOKENS
        self.model = model
        self.prompt_scale = 0.25 if quick else 1.0
        bundled_models_register()
        figures: dict[str, float] = {"runs": runs, "quick": int(quick), "peer_ran": 0}
        self.notes: list[str] = []
        with tempfile.TemporaryDirectory() as tmp, BenchStack(models=[model, EMBED_MODEL], redis_db=redis_db) as stack:
            self.stderr.write(f"stack up at {stack.url} (Redis db {redis_db})")
            self.stack, self.logs = stack, Path(tmp)
            with self._stage("knowledge collection and assistant"):
                world = _World(stack, max_tokens=self.mixed_tokens)
            try:
                with _peer(self, model, no_peer) as peer:
                    self.stderr.write("starting the bare backend in its own process for the direct baseline")
                    with DirectProcess(model, env=child_env(), log=self.logs / "direct.log") as direct:
                        self.stderr.write(f"direct: {direct.ready}")
                        with self._stage("paired runs"):
                            figures.update(self._paired(direct, peer, runs, max_tokens))
                    with self._stage("concurrency"):
                        figures.update(self._concurrency(peer))
                    with self._stage("idle baselines"):
                        figures.update(self._idle(world, peer, runs))
                    with self._stage("mixed run"):
                        figures.update(self._mixed(world, clients, mixed_seconds, figures))
                    if peer is not None:
                        figures["peer_ran"] = 1
                        with self._stage("mixed replay on /v1 and the peer"):
                            figures.update(self._peer_mixed(peer, clients, peer_seconds, figures))
                if others := stack.foreign_workers():
                    self.notes.append(f"WARNING: other workers joined Redis db {redis_db} during the run "
                                      f"({', '.join(others)}) and may have served some requests; run it again "
                                      "with another --redis-db.")
            finally:
                world.close()
        if not skip_audio:
            with self._stage("speech"):
                figures.update(self._audio())
        with self._stage("embeddings"):
            figures.update(self._embeddings())
        if not quick:  # what the model picker shows as this model's speed here
            modelspec_bench_record(name=model, ttft_ms=figures["llm_api_ttft_p50_ms"],
                                   tokens_per_s=figures["llm_api_tokens_per_s"])
        self.stdout.write(table(_rows(figures)))
        for note in self.notes:
            self.stdout.write(note)
        self.stdout.write(as_json("inference", figures))
        if json_out:
            Path(json_out).write_text(as_json("inference", figures) + "\n")

    @contextlib.contextmanager
    def _stage(self, name: str) -> Iterator[None]:
        """Say on stderr how long each part of the run took, so a slow one is easy to find."""
        started = time.perf_counter()
        yield
        self.stderr.write(f"{name}: {time.perf_counter() - started:.0f} s")

    # ---------------------------------------------------------------- chat: direct, /v1 and peer, paired

    def _paired(self, direct: DirectProcess, peer: PeerServer | None, runs: int, max_tokens: int
                ) -> dict[str, float]:
        def messages(i: int) -> list[dict[str, str]]:
            return [{"role": "system", "content": SYSTEM_PROMPT}, {"role": "user", "content": QUESTIONS[i % len(
                QUESTIONS)]}]

        warm = [{"role": "system", "content": SYSTEM_PROMPT}, {"role": "user", "content": "Say hello."}]
        direct.generate(warm, 8)
        _checked(self.stack.stream(self.model, 8, warm))
        if peer is not None:
            _checked(sse_chat(peer.url, {"messages": warm, "max_tokens": 8, "temperature": 0}))
        d: list[dict[str, Any]] = []
        a: list[StreamResult] = []
        p: list[StreamResult] = []
        for i in range(runs):  # one at a time, alternating, so drift on the machine hits all of them alike
            d.append(direct.generate(messages(i), max_tokens, 0.0))
            a.append(_checked(self.stack.stream(self.model, max_tokens, messages(i))))
            if peer is not None:
                p.append(_checked(sse_chat(peer.url, {"messages": messages(i), "max_tokens": max_tokens,
                                                      "temperature": 0})))
        d_ttft, a_ttft = [r["ttft_ms"] for r in d], [r.ttft_ms for r in a]
        paired = [x - y for x, y in zip(a_ttft, d_ttft, strict=True)]
        # Parley's own part of each /v1 request: the TTFT its client saw less the engine's own time to that
        # first token, timed in the worker around the same backend call the direct process makes. Exact
        # per request; the paired difference also carries llama-server's run-to-run spread (±30 ms here).
        engine = [(self.stack.outcome(r.request_id) or {}).get("engine_ttft_ms") for r in a]
        if any(value is None for value in engine):
            raise CommandError("the worker's outcome lacks engine_ttft_ms for some /v1 runs")
        overhead = [x - y for x, y in zip(a_ttft, engine, strict=True)]
        d_tps, a_tps = median([r["decode_tps"] for r in d]), median([r.decode_tps for r in a])
        out = {
            "llm_direct_ttft_p50_ms": percentile(d_ttft, 50), "llm_direct_ttft_p99_ms": percentile(d_ttft, 99),
            "llm_api_ttft_p50_ms": percentile(a_ttft, 50), "llm_api_ttft_p99_ms": percentile(a_ttft, 99),
            "llm_api_overhead_p50_ms": percentile(overhead, 50), "llm_api_overhead_p99_ms": percentile(overhead, 99),
            "llm_engine_ttft_p50_ms": percentile(engine, 50),
            # Per pair: each /v1 run minus the direct run just before it, on the same prompt.
            "llm_api_overhead_paired_p50_ms": percentile(paired, 50),
            "llm_api_overhead_paired_p99_ms": percentile(paired, 99),
            "llm_direct_tokens_per_s": d_tps, "llm_api_tokens_per_s": a_tps,
            "llm_api_delivered_ratio": _ratio(a_tps, d_tps),
            # The counting check: the same streams counted three other ways.
            "llm_api_e2e_tokens_per_s": median([r.e2e_tps for r in a]),
            "llm_api_chunks_per_s": median([r.chunk_rate for r in a]),
            "llm_api_chunks_per_token": sum(r.chunks for r in a) / max(1, sum(r.tokens for r in a)),
            "llm_api_usage_per_text_token": _usage_per_text_token(self.model, a),
        }
        if peer is not None:
            p_ttft = [r.ttft_ms for r in p]
            p_tps = median([r.decode_tps for r in p])
            diffs = [x - y for x, y in zip(a_ttft, p_ttft, strict=True)]
            out.update({
                "peer_ttft_p50_ms": percentile(p_ttft, 50), "peer_ttft_p99_ms": percentile(p_ttft, 99),
                "peer_tokens_per_s": p_tps,
                "peer_parley_ttft_p50_ms": percentile(a_ttft, 50), "peer_parley_ttft_p99_ms": percentile(a_ttft, 99),
                "peer_parley_tokens_per_s": a_tps,
                "parley_minus_peer_ttft_p50_ms": percentile(diffs, 50),
                "parley_minus_peer_ttft_p99_ms": percentile(diffs, 99),
                "parley_over_peer_ttft": _ratio(percentile(a_ttft, 50), percentile(p_ttft, 50)),
                "parley_over_peer_decode": _ratio(a_tps, p_tps),
            })
        return out

    # ---------------------------------------------------------------- concurrency

    def _concurrency(self, peer: PeerServer | None) -> dict[str, float]:
        tokens = self.concurrency_tokens
        serial = iter(range(10_000))  # a new story topic for every request: no prompt is seen twice

        def story(temperature: float) -> tuple[list[dict[str, str]], float]:
            topic = STORY_TOPICS[next(serial) % len(STORY_TOPICS)]
            text = f"Write a long, detailed story about {topic}, at least 300 words."
            return [{"role": "system", "content": SYSTEM_PROMPT}, {"role": "user", "content": text}], temperature

        def parley(temperatures: tuple[float, ...]) -> float:
            return _aggregate([lambda t=t: self.stack.stream(self.model, tokens, *story(t)) for t in temperatures])

        out = {}
        for streams in (1, 4, 8):
            out[f"llm_api_aggregate_tps_{streams}"] = parley((0.0,) * streams)
        out["llm_api_aggregate_tps_4_mixed_temp"] = parley(MIXED_TEMPERATURES)
        out["llm_api_aggregate_ratio_4_vs_1"] = _ratio(out["llm_api_aggregate_tps_4"], out["llm_api_aggregate_tps_1"])
        out["llm_api_aggregate_ratio_4_mixed_vs_1"] = _ratio(out["llm_api_aggregate_tps_4_mixed_temp"],
                                                             out["llm_api_aggregate_tps_1"])
        if peer is not None:
            def on_peer(temperatures: tuple[float, ...]) -> float:
                def one(t: float) -> StreamResult:
                    messages, temperature = story(t)
                    return sse_chat(peer.url, {"messages": messages, "max_tokens": tokens,
                                               "temperature": temperature})
                return _aggregate([lambda t=t: one(t) for t in temperatures])

            out["peer_aggregate_tps_1"] = on_peer((0.0,))
            out["peer_aggregate_tps_4_mixed_temp"] = on_peer(MIXED_TEMPERATURES)
            out["parley_over_peer_tps_4_mixed_temp"] = _ratio(out["llm_api_aggregate_tps_4_mixed_temp"],
                                                              out["peer_aggregate_tps_4_mixed_temp"])
        return out

    # ---------------------------------------------------------------- request classes: idle, then mixed

    def _idle(self, world: _World, peer: PeerServer | None, runs: int) -> dict[str, float]:
        """Each class alone on an idle stack, one request at a time: the baseline of the mixed run. The
        /v1 prompts also go to the peer, alternately, which tells prefill speed apart from Parley's path."""
        count = 1 if self.quick else max(2, runs // 2)
        out = {}
        for cls, sizes in (("ws", ("short", "long")), ("v1", ("short", "long")), ("knowledge", ("long",))):
            for size in sizes:
                n = count if size == "short" or cls == "knowledge" else max(1, count // 2)
                results, on_peer = [], []
                for i in range(n):
                    planned = plan_class(cls, size, 50_000 + i, scale=self.prompt_scale)
                    results.append(world.send(-1, planned))
                    if cls == "v1" and peer is not None:
                        on_peer.append(_checked(sse_chat(peer.url, {
                            "messages": planned.messages(), "max_tokens": self.mixed_tokens,
                            "temperature": planned.temperature})))
                bad = [r.error for r in results if not r.ok]
                if bad:
                    raise RuntimeError(f"idle {cls}/{size} request failed: {bad[0]}")
                out[f"idle_{cls}_{size}_ttft_p50_ms"] = median([r.ttft_ms for r in results])
                if on_peer:
                    out[f"peer_idle_{size}_ttft_p50_ms"] = median([r.ttft_ms for r in on_peer])
                if on_peer and size == "long":
                    # The engine's own prefill speed on this CPU: what bounds every long prompt's TTFT.
                    out["peer_prefill_tokens_per_s"] = median([
                        float(r.extra.get("timings", {}).get("prompt_per_second") or "nan") for r in on_peer])
        return out

    def _mixed(self, world: _World, clients: int, seconds: float, figures: dict[str, float]) -> dict[str, float]:
        self.stderr.write(f"mixed run: {clients} clients for {seconds:.0f} s (WebSocket chat, /v1, knowledge)")
        run = traffic_run(clients=clients, seconds=seconds, send=world.send,
                          make=lambda c, i: plan(c, i, scale=self.prompt_scale), on_thread_end=_close_db)
        samples = run.samples
        out = {"mixed_seconds": seconds, "mixed_clients": clients,
               **traffic_summary(run, prefix="mixed")}
        for cls in ("ws", "v1"):
            out[f"mixed_{cls}_short_p99_over_idle_p50"] = _ratio(out[f"mixed_{cls}_short_ttft_p99_ms"],
                                                                 figures[f"idle_{cls}_short_ttft_p50_ms"])
        if out["mixed_errors"]:
            self.notes.append(f"mixed run: {out['mixed_errors']:.0f} errors; the first: {first_error(samples)}")
        return out

    def _peer_mixed(self, peer: PeerServer, clients: int, seconds: float, figures: dict[str, float]
                    ) -> dict[str, float]:
        """The mixed run's plans, each sent as a plain streamed chat request (knowledge with its sources),
        replayed on Parley's /v1 and on the peer: the same requests, the same temperatures.

        A fixed piece of work, not a time window: each client sends its first PEER_REPLAY_REQUESTS planned
        requests, and throughput is all their tokens over the time until the last one finished. Counting
        only the tokens inside a window depended on which 1,000-token prompts happened to be under way,
        and swung by half from run to run. The order is Parley, peer, peer, Parley, so whatever the machine
        does over the minutes (and the run before) weighs on both alike. `seconds` bounds each part."""
        tokens = self.mixed_tokens
        per_client = 1 if self.quick else PEER_REPLAY_REQUESTS

        def body(planned: Planned) -> dict[str, Any]:
            return {"messages": planned.messages(), "max_tokens": tokens, "temperature": planned.temperature}

        def on_parley(client: int, planned: Planned) -> StreamResult:
            result = sse_chat(self.stack.url, {"model": self.model, **body(planned)}, key=self.stack.key)
            self.stack.processed_fill(result)
            return result

        def on_peer(client: int, planned: Planned) -> StreamResult:
            return sse_chat(peer.url, body(planned))

        runs: dict[str, list[Run]] = {"parley_v1": [], "peer": []}
        peer_processed = 0.0
        for who in ("parley_v1", "peer", "peer", "parley_v1"):
            self.stderr.write(f"mixed replay on {who}: {clients} clients, {per_client} request(s) each")
            before = peer.metrics() if who == "peer" else {}
            run = traffic_run(clients=clients, seconds=seconds, send=on_parley if who == "parley_v1" else on_peer,
                              make=lambda c, i: plan(c, i, seed=7, scale=self.prompt_scale),
                              requests_per_client=per_client)
            runs[who].append(run)
            if who == "peer":
                after = peer.metrics()
                key = "llamacpp:prompt_tokens_total"
                if key in after:  # the server's own counter, which also sees requests whose usage never arrived
                    peer_processed += after[key] - before.get(key, 0.0)
        out: dict[str, float] = {}
        for who, done in runs.items():
            samples = [sample for run in done for sample in run.samples]
            ok = [s for s in samples if s.result.ok]
            short = [s.result.ttft_ms for s in ok if s.planned.size == "short"]
            gaps = [s.result.max_gap_ms for s in ok if s.result.chunks > 1]
            counted = [s for s in ok if s.result.processed is not None and s.result.prompt_tokens]
            submitted = sum(s.result.prompt_tokens for s in counted)
            wall = sum(run.drained - run.started for run in done)
            out.update({
                f"{who}_mixed_short_ttft_p50_ms": percentile(short, 50),
                f"{who}_mixed_short_ttft_p99_ms": percentile(short, 99),
                f"{who}_mixed_max_gap_ms": max(gaps) if gaps else float("nan"),
                f"{who}_mixed_tokens_per_s": sum(s.result.tokens for s in ok) / wall if wall > 0 else float("nan"),
                f"{who}_mixed_processed_ratio": (sum(s.result.processed for s in counted) / submitted
                                                 if submitted else float("nan")),
                f"{who}_mixed_errors": len(samples) - len(ok),
                f"{who}_mixed_requests": len(samples),
            })
            if who == "peer":
                submitted = sum(s.result.prompt_tokens for s in ok)
                if peer_processed and submitted:
                    out["peer_mixed_processed_ratio"] = peer_processed / submitted
            if len(samples) != len(ok):
                self.notes.append(f"{who} mixed replay: {len(samples) - len(ok)} errors; the first: "
                                  f"{first_error(samples)}")
        out["parley_over_peer_mixed_tps"] = _ratio(out["parley_v1_mixed_tokens_per_s"], out["peer_mixed_tokens_per_s"])
        out["parley_minus_peer_mixed_short_ttft_p50_ms"] = (out["parley_v1_mixed_short_ttft_p50_ms"]
                                                            - out["peer_mixed_short_ttft_p50_ms"])
        return out

    # ---------------------------------------------------------------- audio and embeddings

    def _audio(self) -> dict[str, float]:
        from inference.audio import audio_decode

        out = {}
        with tempfile.TemporaryDirectory() as tmp:
            raw, clip = Path(tmp) / "raw.wav", Path(tmp) / "clip.wav"
            subprocess.run(["espeak-ng", "-w", str(raw), "what is the capital of France"], check=True)
            # Pad to exactly 3 seconds, as a push-to-talk turn would be.
            subprocess.run(["sox", str(raw), "-r", "16000", "-c", "1", "-b", "16", str(clip), "pad", "0", "3",
                            "trim", "0", "3"], check=True)
            audio = audio_decode(clip.read_bytes(), max_seconds=10)
        seconds = len(audio) / 16000
        for name, key in (("whisper-tiny.en", "stt_tiny"), ("whisper-base", "stt_base")):
            backend = backend_direct(name)
            backend.transcribe(audio)
            times = []
            for _ in range(5):
                started = time.perf_counter()
                backend.transcribe(audio)
                times.append((time.perf_counter() - started) * 1000)
            backend.unload()
            out[f"{key}_3s_clip_ms"] = median(times)
            out[f"{key}_rtf"] = median(times) / 1000 / seconds
        piper = backend_direct("piper-en-us-joe")
        list(piper.synthesize("Warm up."))
        firsts, rtfs = [], []
        for _ in range(5):
            started = time.perf_counter()
            chunks = []
            for chunk in piper.synthesize(TTS_TEXT):
                if not chunks:
                    firsts.append((time.perf_counter() - started) * 1000)
                chunks.append(chunk)
            total = time.perf_counter() - started
            rtfs.append(total / (sum(len(c) for c in chunks) / 2 / piper.sample_rate))
        out["tts_first_chunk_ms"] = median(firsts)
        out["tts_rtf"] = median(rtfs)
        return out

    def _embeddings(self) -> dict[str, float]:
        backend = backend_direct(EMBED_MODEL)
        sentences = [f"Sentence number {i} about invoices, passwords and meeting rooms." for i in range(512)]
        backend.embed(sentences[:32])
        started = time.perf_counter()
        backend.embed(sentences)
        per_second = len(sentences) / (time.perf_counter() - started)
        singles = []
        for sentence in sentences[:20]:
            t = time.perf_counter()
            backend.embed([sentence])
            singles.append((time.perf_counter() - t) * 1000)
        return {"embed_sentences_per_s": per_second, "embed_single_query_ms": median(singles)}


# -------------------------------------------------------------------- the world the clients act in


class _World:
    """The bench user's assistant (temperature 0.5), knowledge collection and API keys, and the one
    `send` that turns a planned request into a timed one through the stack."""

    def __init__(self, stack: BenchStack, *, max_tokens: int) -> None:
        from chat.models import Assistant
        from chat.services import assistant_create

        self.stack, self.max_tokens = stack, max_tokens
        # Every class of the mixed run asks the model under test: the assistant's route is that model.
        model = stack.models[0]
        name = f"Bench assistant ({model}, {max_tokens} tokens)"
        self.assistant = (
            Assistant.objects.filter(owner=stack.user, name=name, is_active=True).order_by("pk").first()
            or assistant_create(owner=stack.user, name=name, system_prompt=BENCH_ASSISTANT_PROMPT,
                                temperature=0.5, max_tokens=max_tokens, route_alias=model))
        knowledge_seed(stack.user)
        self.cookie = stack.session_cookie()
        # One key per client: a client's knowledge answers run one after another, so the newest usage row
        # of its key after a request started is that request's.
        self.keys: dict[int, tuple[Any, str]] = {}
        self.lock = threading.Lock()

    def close(self) -> None:
        from accounts.services import apikey_revoke

        for api_key, _ in self.keys.values():
            apikey_revoke(api_key=api_key)

    def _key(self, client: int) -> tuple[Any, str]:
        from accounts.services import apikey_create

        with self.lock:
            if client not in self.keys:
                self.keys[client] = apikey_create(user=self.stack.user, name=f"bench-knowledge-{client}",
                                                    enforce_plan=False)
            return self.keys[client]

    def send(self, client: int, planned: Planned) -> StreamResult:
        from chat.services import conversation_create

        stack = self.stack
        if planned.cls == "ws":
            conversation = conversation_create(user=stack.user, assistant=self.assistant)
            result = stack.ws_turn(conversation.pk, planned.text, self.cookie)
        elif planned.cls == "v1":
            result = stack.stream(stack.models[0], self.max_tokens, planned.messages(),
                                  temperature=planned.temperature)
        else:
            result = self._knowledge(client, planned)
        stack.processed_fill(result)
        if not result.ok:
            stack.errors_seen += 1
        return result

    def _knowledge(self, client: int, planned: Planned) -> StreamResult:
        from django.utils import timezone

        from inference.models import UsageRecord

        api_key, key = self._key(client)
        since = timezone.now()
        result = self.stack.knowledge_answer(planned.text, key=key, max_tokens=self.max_tokens,
                                             model=self.stack.models[0])
        if not result.ok:
            return result
        # The worker writes its usage row just after the reply is sent; wait for it, briefly.
        deadline = time.monotonic() + 10
        row = None
        while row is None and time.monotonic() < deadline:
            row = (UsageRecord.objects.filter(api_key=api_key, task="chat", created_at__gte=since)
                   .order_by("-created_at").first())
            if row is None:
                time.sleep(0.05)
        if row is not None:
            result.worker_ttft_ms = row.ttft_ms
            result.tokens, result.prompt_tokens = row.completion_tokens, row.prompt_tokens
            result.request_id = "-".join(row.request_id.split("-")[:2])  # the job id less an attempt suffix
        return result


# -------------------------------------------------------------------- helpers


def _ratio(numerator: float, denominator: float) -> float:
    """numerator ÷ denominator, NaN when the denominator is zero or missing (a run too short to measure it)."""
    if not denominator or math.isnan(denominator):
        return float("nan")
    return numerator / denominator


def _checked(result: StreamResult) -> StreamResult:
    if not result.ok:
        raise RuntimeError(f"a benchmark request failed: {result.error}")
    return result


def _aggregate(sends: list[Callable[[], StreamResult]]) -> float:
    """Completion tokens per second of wall time for requests sent at once (TTFT included)."""
    results: list[StreamResult] = []
    started = time.perf_counter()
    threads = [threading.Thread(target=lambda s=s: results.append(s())) for s in sends]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=600)
    bad = [r.error for r in results if not r.ok]
    if bad or len(results) != len(sends):
        raise RuntimeError(f"a concurrent request failed: {bad[0] if bad else 'timed out'}")
    return sum(r.tokens for r in results) / (max(r.end for r in results) - started)


def _close_db() -> None:
    from django.db import connections

    connections.close_all()


def _usage_per_text_token(model: str, results: list[StreamResult]) -> float:
    """The server's completion_tokens ÷ the streamed text re-tokenized with the model's tokenizer."""
    try:
        from tokenizers import Tokenizer

        from inference.install import model_manifest

        manifest = model_manifest(model) or {}
        tokenizer = Tokenizer.from_file(str(Path(manifest["path"]) / "tokenizer.json"))
    except Exception:  # noqa: BLE001 - no CTranslate2 conversion here, so no tokenizer file
        return float("nan")
    text_tokens = sum(len(tokenizer.encode(r.text, add_special_tokens=False).ids) for r in results)
    return sum(r.tokens for r in results) / text_tokens if text_tokens else float("nan")


class _peer:
    """llama-server on the model's GGUF, or None with a line saying why (the peer row is then skipped)."""

    def __init__(self, command: Command, model: str, disabled: bool) -> None:
        self.command, self.model, self.disabled = command, model, disabled
        self.server: PeerServer | None = None

    def __enter__(self) -> PeerServer | None:
        from inference.devices import cpu_threads
        from inference.engines import llama_server_path
        from inference.install import ModelInstallError, model_prepare

        if self.disabled:
            return None
        binary = llama_server_path()
        if binary is None:
            self.command.notes.append("peer row skipped: llama-server is not built. Run `python manage.py "
                                      "models_install` (the first build takes about 8 minutes), then run this again.")
            self.command.stderr.write(self.command.notes[-1])
            return None
        try:
            gguf = model_prepare(self.model, artifact="gguf").path
        except ModelInstallError as exc:
            self.command.notes.append(f"peer row skipped: {exc}")
            return None
        server = PeerServer(binary, gguf, log=self.command.logs / "peer.log", threads=cpu_threads())
        try:
            self.server = server.__enter__()
        except RuntimeError as exc:
            self.command.notes.append(f"peer row skipped: {exc}")
            self.command.stderr.write(self.command.notes[-1])
            return None
        self.command.stderr.write("peer: " + " ".join(self.server.command))
        self.command.notes.append("peer: llama-server " + " ".join(self.server.command[1:]).replace(
            str(gguf), gguf.name))
        return self.server

    def __exit__(self, *exc: object) -> None:
        if self.server is not None:
            self.server.__exit__()


# -------------------------------------------------------------------- the table


def _ok(condition: bool) -> str:
    return "✓ met" if condition else "✗ MISSED"


def _pair(f: dict[str, float], a: str, b: str, digits: int = 1) -> str:
    return f"{f[a]:.{digits}f} / {f[b]:.{digits}f}"


def _rows(f: dict[str, float]) -> list[tuple[str, object, str, str]]:
    rows: list[tuple[str, object, str, str]] = [
        ("LLM TTFT direct (own process) p50 / p99", _pair(f, "llm_direct_ttft_p50_ms", "llm_direct_ttft_p99_ms"),
         "ms", ""),
        ("LLM TTFT via /v1 stream p50 / p99", _pair(f, "llm_api_ttft_p50_ms", "llm_api_ttft_p99_ms"), "ms", ""),
        ("engine's own TTFT in the worker p50", f["llm_engine_ttft_p50_ms"], "ms", "same backend call as direct"),
        ("API overhead p50 (per request: /v1 TTFT − engine's)", f["llm_api_overhead_p50_ms"], "ms",
         f"<= {OVERHEAD_P50_MS:.0f}: {_ok(f['llm_api_overhead_p50_ms'] <= OVERHEAD_P50_MS)}"),
        ("API overhead p99 (per request: /v1 TTFT − engine's)", f["llm_api_overhead_p99_ms"], "ms",
         f"<= {OVERHEAD_P99_MS:.0f}: {_ok(f['llm_api_overhead_p99_ms'] <= OVERHEAD_P99_MS)}"),
        ("…paired /v1 − direct process p50 / p99", _pair(f, "llm_api_overhead_paired_p50_ms",
                                                          "llm_api_overhead_paired_p99_ms"), "ms",
         "cross-check; carries llama-server's own spread"),
        ("LLM decode tokens/s direct", f["llm_direct_tokens_per_s"], "tok/s", ""),
        ("LLM decode tokens/s delivered via /v1", f["llm_api_tokens_per_s"], "tok/s", ""),
        ("delivered / direct", f["llm_api_delivered_ratio"], "x",
         f">= 0.95: {_ok(f['llm_api_delivered_ratio'] >= 0.95)}"),
        ("…same streams, usage tokens over the whole request", f["llm_api_e2e_tokens_per_s"], "tok/s",
         "end to end, TTFT included"),
        ("…same streams, SSE chunks/s (not tokens)", f["llm_api_chunks_per_s"], "chunks/s", ""),
        ("…SSE chunks per usage token", f["llm_api_chunks_per_token"], "x", ""),
        ("…usage tokens per re-tokenized text token", f["llm_api_usage_per_text_token"], "x", "≈ 1"),
        ("aggregate tok/s, 1 / 4 / 8 streams (temp 0)", " / ".join(
            f"{f[f'llm_api_aggregate_tps_{n}']:.1f}" for n in (1, 4, 8)), "tok/s", ""),
        ("aggregate 4 streams / 1 stream", f["llm_api_aggregate_ratio_4_vs_1"], "x",
         f">= 2: {_ok(f['llm_api_aggregate_ratio_4_vs_1'] >= 2)}"),
        ("aggregate tok/s, 4 streams at temp 0.1/0.5/0.7/0.9", f["llm_api_aggregate_tps_4_mixed_temp"], "tok/s", ""),
        ("aggregate 4 mixed-temp streams / 1 stream", f["llm_api_aggregate_ratio_4_mixed_vs_1"], "x",
         f">= 2: {_ok(f['llm_api_aggregate_ratio_4_mixed_vs_1'] >= 2)}"),
    ]
    rows += _mixed_rows(f)
    if f.get("peer_ran"):
        rows += _peer_rows(f)
    if "stt_tiny_3s_clip_ms" in f:
        rows += [
            ("STT tiny.en, 3 s clip", f["stt_tiny_3s_clip_ms"], "ms",
             f"<= 500: {_ok(f['stt_tiny_3s_clip_ms'] <= 500)}"),
            ("STT tiny.en real-time factor", f["stt_tiny_rtf"], "x", ""),
            ("STT base, 3 s clip", f["stt_base_3s_clip_ms"], "ms", ""),
            ("STT base real-time factor", f["stt_base_rtf"], "x", ""),
            ("TTS first chunk, 120 chars", f["tts_first_chunk_ms"], "ms",
             f"<= 150: {_ok(f['tts_first_chunk_ms'] <= 150)}"),
            ("TTS real-time factor", f["tts_rtf"], "x", ""),
        ]
    rows += [
        ("embeddings", f["embed_sentences_per_s"], "sentences/s", ""),
        ("embedding, single query", f["embed_single_query_ms"], "ms", ""),
    ]
    return rows


def _mixed_rows(f: dict[str, float]) -> list[tuple[str, object, str, str]]:
    label = {"ws": "WebSocket chat (0.5)", "v1": "/v1 stream (0.7)"}
    rows: list[tuple[str, object, str, str]] = [
        (f"mixed run: {f['mixed_clients']:.0f} clients, {f['mixed_seconds']:.0f} s, requests",
         f"{f['mixed_requests']:.0f}", "", ""),
    ]
    for cls in ("ws", "v1"):
        ratio = f[f"mixed_{cls}_short_p99_over_idle_p50"]
        rows += [
            (f"{label[cls]} short TTFT idle p50 → mixed p50 / p99",
             f"{f[f'idle_{cls}_short_ttft_p50_ms']:.0f} → {f[f'mixed_{cls}_short_ttft_p50_ms']:.0f} / "
             f"{f[f'mixed_{cls}_short_ttft_p99_ms']:.0f}", "ms",
             f"p99 <= {SHORT_P99_OVER_IDLE_P50:.0f}× idle p50 ({ratio:.1f}×): "
             f"{_ok(ratio <= SHORT_P99_OVER_IDLE_P50)}"),
            (f"{label[cls]} long TTFT idle p50 → mixed p50 / p99",
             f"{f[f'idle_{cls}_long_ttft_p50_ms']:.0f} → {f[f'mixed_{cls}_long_ttft_p50_ms']:.0f} / "
             f"{f[f'mixed_{cls}_long_ttft_p99_ms']:.0f}", "ms", ""),
        ]
    rows += [
        ("knowledge answer (0.1) TTFT idle p50 → mixed p50 / p99",
         f"{f['idle_knowledge_long_ttft_p50_ms']:.0f} → {f['mixed_knowledge_long_ttft_p50_ms']:.0f} / "
         f"{f['mixed_knowledge_long_ttft_p99_ms']:.0f}", "ms", "worker's, from UsageRecord.ttft_ms"),
        ("longest gap between two tokens of a reply (WS / v1)",
         f"{f['mixed_ws_max_gap_ms']:.0f} / {f['mixed_v1_max_gap_ms']:.0f}", "ms",
         f"<= {MAX_GAP_MS:.0f}: {_ok(f['mixed_max_gap_ms'] <= MAX_GAP_MS)}"),
        ("mixed aggregate tokens/s in the window / with the drain",
         _pair(f, "mixed_tokens_per_s", "mixed_tokens_per_s_with_drain"), "tok/s", ""),
        ("prompt tokens processed ÷ submitted (WS / v1 / knowledge)",
         f"{f['mixed_processed_ratio']:.2f} ({f['mixed_ws_processed_ratio']:.2f} / "
         f"{f['mixed_v1_processed_ratio']:.2f} / {f['mixed_knowledge_processed_ratio']:.2f})", "x",
         f"<= {PROCESSED_RATIO}: {_ok(f['mixed_processed_ratio'] <= PROCESSED_RATIO)}"
         if not math.isnan(f["mixed_processed_ratio"]) else "not reported by the engine"),
        ("mixed errors (WS / v1 / knowledge)",
         f"{f['mixed_errors']:.0f} ({f['mixed_ws_errors']:.0f} / {f['mixed_v1_errors']:.0f} / "
         f"{f['mixed_knowledge_errors']:.0f})", "", f"0: {_ok(f['mixed_errors'] == 0)}"),
    ]
    return rows


def _peer_rows(f: dict[str, float]) -> list[tuple[str, object, str, str]]:
    over = f["parley_minus_peer_ttft_p50_ms"]
    return [
        ("peer llama-server TTFT p50 / p99", _pair(f, "peer_ttft_p50_ms", "peer_ttft_p99_ms"), "ms", ""),
        ("Parley − peer TTFT, paired p50 / p99", _pair(f, "parley_minus_peer_ttft_p50_ms",
                                                      "parley_minus_peer_ttft_p99_ms"), "ms",
         f"p50 <= {PEER_OVERHEAD_MS:.0f}: {_ok(over <= PEER_OVERHEAD_MS)}"),
        ("idle /v1 TTFT p50, short / long prompt, Parley",
         _pair(f, "idle_v1_short_ttft_p50_ms", "idle_v1_long_ttft_p50_ms", 0), "ms", ""),
        ("idle TTFT p50, short / long prompt, peer",
         _pair(f, "peer_idle_short_ttft_p50_ms", "peer_idle_long_ttft_p50_ms", 0), "ms", "same prompts"),
        ("peer prefill speed on the long prompts (its own timings)", f["peer_prefill_tokens_per_s"], "tok/s", ""),
        ("Parley ÷ peer TTFT p50 (lower is better)", f["parley_over_peer_ttft"], "x", "judged by the ms above"),
        ("decode tok/s Parley / peer", _pair(f, "peer_parley_tokens_per_s", "peer_tokens_per_s"), "tok/s", ""),
        ("Parley ÷ peer decode", f["parley_over_peer_decode"], "x",
         f">= {PEER_RATIO}: {_ok(f['parley_over_peer_decode'] >= PEER_RATIO)}"),
        ("4 mixed-temp streams tok/s Parley / peer",
         _pair(f, "llm_api_aggregate_tps_4_mixed_temp", "peer_aggregate_tps_4_mixed_temp"), "tok/s", ""),
        ("Parley ÷ peer, 4 mixed-temp streams", f["parley_over_peer_tps_4_mixed_temp"], "x",
         f">= {PEER_RATIO}: {_ok(f['parley_over_peer_tps_4_mixed_temp'] >= PEER_RATIO)}"),
        ("mixed replay (fixed work, ABBA) tok/s, Parley /v1 / peer",
         _pair(f, "parley_v1_mixed_tokens_per_s", "peer_mixed_tokens_per_s"), "tok/s", ""),
        ("Parley ÷ peer, mixed replay", f["parley_over_peer_mixed_tps"], "x",
         f">= {PEER_RATIO}: {_ok(f['parley_over_peer_mixed_tps'] >= PEER_RATIO)}"),
        ("mixed replay short TTFT p50 / p99, Parley /v1",
         _pair(f, "parley_v1_mixed_short_ttft_p50_ms", "parley_v1_mixed_short_ttft_p99_ms", 0), "ms", ""),
        ("mixed replay short TTFT p50 / p99, peer",
         _pair(f, "peer_mixed_short_ttft_p50_ms", "peer_mixed_short_ttft_p99_ms", 0), "ms",
         f"Parley − peer p50 {f['parley_minus_peer_mixed_short_ttft_p50_ms']:.0f} ms"),
        ("mixed replay longest gap, Parley /v1 / peer",
         _pair(f, "parley_v1_mixed_max_gap_ms", "peer_mixed_max_gap_ms", 0), "ms", ""),
        ("mixed replay processed ÷ submitted, Parley /v1 / peer",
         _pair(f, "parley_v1_mixed_processed_ratio", "peer_mixed_processed_ratio", 2), "x", ""),
        ("mixed replay errors, Parley /v1 / peer",
         f"{f['parley_v1_mixed_errors']:.0f} / {f['peer_mixed_errors']:.0f}", "", ""),
        ("peer verdict", "met within overhead" if _peer_met(f) else "not met", "",
         f"TTFT_parley − TTFT_peer <= {PEER_OVERHEAD_MS:.0f} ms p50 and every Parley ÷ peer ratio >= {PEER_RATIO}"),
    ]


def _peer_met(f: dict[str, float]) -> bool:
    return (f["parley_minus_peer_ttft_p50_ms"] <= PEER_OVERHEAD_MS and f["parley_over_peer_decode"] >= PEER_RATIO
            and f["parley_over_peer_tps_4_mixed_temp"] >= PEER_RATIO and f["parley_over_peer_mixed_tps"] >= PEER_RATIO)

