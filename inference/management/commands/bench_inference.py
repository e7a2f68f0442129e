"""Benchmark the bundled models: the bare backend in this process against the full stack
(HTTP → Daphne → Redis → gpu worker → Channels → SSE), measured in one run so the ratio holds.
"""

from __future__ import annotations

import subprocess
import tempfile
import threading
import time
from pathlib import Path

from django.core.management.base import BaseCommand

from common.bench import as_json, median, percentile, table
from inference.bench_stack import BenchStack, backend_direct, direct_generate

TTS_TEXT = ("Parley answers from your own documents and speaks the answer back to you, running on "
            "hardware you control, with no cloud.")  # 120 characters
CHAT_MODEL = "qwen2.5-coder-0.5b-ct2"


class Command(BaseCommand):
    help = "Measure LLM, STT, TTS and embedding speed, direct and through /v1, and print a table and JSON."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--runs", type=int, default=20, help="Paired direct/API chat runs.")
        parser.add_argument("--max-tokens", type=int, default=48)
        parser.add_argument("--skip-audio", action="store_true")

    def handle(self, *args: object, runs: int, max_tokens: int, skip_audio: bool, **options: object) -> None:
        from inference.services import bundled_models_register

        bundled_models_register()
        figures: dict[str, float] = {}
        with BenchStack(models=[CHAT_MODEL]) as stack:
            self.stderr.write(f"stack up at {stack.url}; loading models in this process for the direct baseline")
            figures.update(self._chat(stack, runs, max_tokens))
            figures.update(self._concurrency(stack, max_tokens=64))
        if not skip_audio:
            figures.update(self._audio())
        figures.update(self._embeddings())
        self.stdout.write(table(_rows(figures)))
        self.stdout.write(as_json("inference", figures))

    # ---------------------------------------------------------------- chat, direct vs API

    def _chat(self, stack: BenchStack, runs: int, max_tokens: int) -> dict[str, float]:
        backend = backend_direct(CHAT_MODEL)
        try:
            direct, api = [], []
            direct_generate(backend, 8)
            stack.stream(CHAT_MODEL, 8)
            for _ in range(runs):  # alternate so drift on the machine hits both sides alike
                direct.append(direct_generate(backend, max_tokens))
                api.append(stack.stream(CHAT_MODEL, max_tokens))
        finally:
            backend.unload()
        d_ttft, a_ttft = [r[0] for r in direct], [r[0] for r in api]
        d_tps, a_tps = median([r[1] for r in direct]), median([r[1] for r in api])
        return {
            "llm_direct_ttft_p50_ms": percentile(d_ttft, 50), "llm_direct_ttft_p99_ms": percentile(d_ttft, 99),
            "llm_api_ttft_p50_ms": percentile(a_ttft, 50), "llm_api_ttft_p99_ms": percentile(a_ttft, 99),
            "llm_api_overhead_p50_ms": percentile(a_ttft, 50) - percentile(d_ttft, 50),
            "llm_api_overhead_p99_ms": percentile(a_ttft, 99) - percentile(d_ttft, 99),
            "llm_direct_tokens_per_s": d_tps, "llm_api_tokens_per_s": a_tps,
            "llm_api_delivered_ratio": a_tps / d_tps if d_tps else float("nan"),
        }

    def _concurrency(self, stack: BenchStack, *, max_tokens: int) -> dict[str, float]:
        out = {}
        for streams in (1, 4, 8):
            results: list[tuple[float, float, int]] = []

            def one(results: list = results) -> None:
                results.append(stack.stream(CHAT_MODEL, max_tokens))

            started = time.perf_counter()
            threads = [threading.Thread(target=one) for _ in range(streams)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            out[f"llm_api_aggregate_tps_{streams}"] = sum(r[2] for r in results) / (time.perf_counter() - started)
        out["llm_api_aggregate_ratio_4_vs_1"] = out["llm_api_aggregate_tps_4"] / out["llm_api_aggregate_tps_1"]
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
        backend = backend_direct("all-minilm-l6-v2")
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


def _rows(f: dict[str, float]) -> list[tuple[str, object, str, str]]:
    def ok(condition: bool) -> str:
        return "met" if condition else "MISSED"

    rows = [
        ("LLM TTFT direct p50 / p99", f"{f['llm_direct_ttft_p50_ms']:.1f} / {f['llm_direct_ttft_p99_ms']:.1f}", "ms",
         ""),
        ("LLM TTFT via /v1 stream p50 / p99", f"{f['llm_api_ttft_p50_ms']:.1f} / {f['llm_api_ttft_p99_ms']:.1f}",
         "ms", ""),
        ("API overhead p50", f["llm_api_overhead_p50_ms"], "ms",
         f"<= 15: {ok(f['llm_api_overhead_p50_ms'] <= 15)}"),
        ("API overhead p99", f["llm_api_overhead_p99_ms"], "ms",
         f"<= 40: {ok(f['llm_api_overhead_p99_ms'] <= 40)}"),
        ("LLM tokens/s direct", f["llm_direct_tokens_per_s"], "tok/s", ""),
        ("LLM tokens/s delivered via /v1", f["llm_api_tokens_per_s"], "tok/s", ""),
        ("delivered / direct", f["llm_api_delivered_ratio"], "x",
         f">= 0.95: {ok(f['llm_api_delivered_ratio'] >= 0.95)}"),
        ("aggregate tok/s, 1 / 4 / 8 streams", " / ".join(
            f"{f[f'llm_api_aggregate_tps_{n}']:.1f}" for n in (1, 4, 8)), "tok/s", ""),
        ("aggregate 4 streams / 1 stream", f["llm_api_aggregate_ratio_4_vs_1"], "x",
         f">= 2: {ok(f['llm_api_aggregate_ratio_4_vs_1'] >= 2)}"),
    ]
    if "stt_tiny_3s_clip_ms" in f:
        rows += [
            ("STT tiny.en, 3 s clip", f["stt_tiny_3s_clip_ms"], "ms",
             f"<= 500: {ok(f['stt_tiny_3s_clip_ms'] <= 500)}"),
            ("STT tiny.en real-time factor", f["stt_tiny_rtf"], "x", ""),
            ("STT base, 3 s clip", f["stt_base_3s_clip_ms"], "ms", ""),
            ("STT base real-time factor", f["stt_base_rtf"], "x", ""),
            ("TTS first chunk, 120 chars", f["tts_first_chunk_ms"], "ms",
             f"<= 150: {ok(f['tts_first_chunk_ms'] <= 150)}"),
            ("TTS real-time factor", f["tts_rtf"], "x", ""),
        ]
    rows += [
        ("embeddings", f["embed_sentences_per_s"], "sentences/s", ""),
        ("embedding, single query", f["embed_single_query_ms"], "ms", ""),
    ]
    return rows

