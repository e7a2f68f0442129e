#!/usr/bin/env python3
"""Recompute docs/capacity.md's model from benchmark JSON (no Django, standard library only).

    python deploy/capacity.py --voice voice.json [--load load.json] [--users 10000] [--markdown]

`voice.json` is the JSON line `manage.py bench_voice` prints (stage p50/p99 in ms); `load.json` is
`manage.py bench_load --json` (Daphne's CPU per turn; with --llm-from-load, tokens/s under load). Figures not
in the files fall back to the measured defaults below (this 2-core machine, 2026-12-05). Flags
marked ASSUMPTION are not measured here; change them when you measure them (e.g. on a GPU).

Model: each stage (speech to text, the LLM, text to speech) is a pool of identical servers fed by
Poisson arrivals (M/M/c, Erlang C). A voice turn's first audio waits in each pool once, so the
headroom between the measured p99 first audio and the 2 s target is split across the three queues,
and each pool gets the fewest servers for which P(wait > its share) <= 1 %.
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

# Measured on this 2-core CPU machine: bench_voice 2026-12-05 (docs/bench/voice-2026-12-05.json; streaming
# STT with speculative replies), bench_inference and the TTS real-time factor 2026-12-02 (FACTS).
MEASURED = {
    "stt_final_ms_p50": 10.4, "stt_final_ms_p99": 14.5,
    "llm_ttft_ms_p50": 21.6, "llm_ttft_ms_p99": 88.2,
    "tts_first_audio_ms_p50": 197.0, "tts_first_audio_ms_p99": 315.6,
    "voice_first_audio_ms_p50": 364.4, "voice_first_audio_ms_p99": 495.7,
    "stt_busy_per_speech_s": 0.384,  # decoder seconds per second of speech (partials and final)
    "stt_decodes_per_turn": 10.65,  # each one a usage row in PostgreSQL...
    "stt_speech_s_per_turn": 2.02,  # ...over bench_voice's clips of this much speech (espeak-ng, 160 wpm)
    "tts_rtf": 0.051,              # Piper
    "llm_prefill_ms": 183.0,       # Qwen 0.5B time to first token with no speculation (bench_inference): a
    #                                  voice reply starts during the pause, so its TTFT above hides this work
    "llm_tokens_per_s_node": 78.3,  # Qwen 0.5B, 8 concurrent streams, whole node
    "llm_slots_per_node": 4,       # llama-server -np 4
    # Daphne CPU per chat turn (consumer, DB writes, forwarding deltas): bench_load 2026-12-03, 20 sockets
    # + 2 /v1 streams, 93 replies in 193 s at a mean 5.8 % of a core.
    "web_cpu_s_per_turn": 0.12,
}
def erlang_c(servers: int, load: float) -> float:
    """P(an arrival waits) in M/M/c with offered load `load` (erlangs); stable for thousands of servers."""
    if load >= servers:
        return 1.0
    blocking = 1.0
    for k in range(1, servers + 1):  # Erlang B by recursion, then C from B
        blocking = load * blocking / (k + load * blocking)
    return servers * blocking / (servers - load * (1 - blocking))


def servers_needed(*, rate: float, service_s: float, wait_budget_s: float, quantile: float = 0.99,
                   max_utilisation: float = 0.85) -> tuple[int, float]:
    """Fewest servers with P(wait > budget) <= 1 - quantile (and utilisation capped); (servers, p99 wait s)."""
    load = rate * service_s
    servers = max(1, math.ceil(load / max_utilisation))
    while True:
        c = erlang_c(servers, load)
        drain = servers / service_s - rate  # rate at which the queue empties
        tail = c * math.exp(-drain * wait_budget_s)
        if tail <= 1 - quantile:
            wait_p = 0.0 if c <= 1 - quantile else math.log(c / (1 - quantile)) / drain
            return servers, wait_p
        servers += max(1, servers // 200)


def model(f: dict, a: argparse.Namespace) -> dict:
    rate = a.users / a.turn_every  # voice turns per second, all users
    speaking = a.users * a.utterance / a.turn_every  # users speaking at any moment
    # Speech to text: the decoder's busy time per second of speech, measured by bench_voice from the ledger
    # (the rolling-window partials while the user speaks, and the final, which decodes only the unconfirmed
    # tail or reuses the last partial).
    stt_work = f["stt_busy_per_speech_s"] * a.utterance / a.stt_speedup
    # LLM: one slot per reply, for its time to first token and its decode at the per-slot rate.
    slot_rate = a.llm_tokens_per_s_node * a.llm_speedup / a.llm_slots
    llm_work = f["llm_prefill_ms"] / 1000 / a.llm_speedup + a.reply_tokens / slot_rate
    # Text to speech: the whole reply is spoken (each sentence synthesised as soon as it is complete).
    tts_work = a.reply_tokens * a.speech_s_per_token * f["tts_rtf"] / a.tts_speedup
    headroom = max(0.05, (a.target_ms - f["voice_first_audio_ms_p99"] / a.path_speedup) / 1000)
    stages = {}
    for name, work, per_node in (("stt", stt_work, 1), ("llm", llm_work, a.llm_slots), ("tts", tts_work, 1)):
        servers, wait = servers_needed(rate=rate, service_s=work, wait_budget_s=headroom / 3)
        stages[name] = {"work_s_per_turn": work, "offered_erlangs": rate * work, "servers": servers,
                        "nodes": math.ceil(servers / per_node), "p99_wait_ms": wait * 1000}
    # Daphne: each turn's own work (measured), every speaker's 50 PCM frames a second, idle sockets' pings.
    web_cpu = rate * f["web_cpu_s_per_turn"] + speaking * 50 * a.frame_cpu_ms / 1000 + a.users * a.socket_idle_cpu
    replicas = math.ceil(web_cpu / a.replica_cpu)
    # Redis: channel-layer and broker commands per turn (deltas, frames out, tasks, claims, quotas).
    redis_ops = rate * (a.reply_tokens * 2 + 40) + a.users / 5  # + heartbeats, leases, pings
    # PostgreSQL: message rows, a progress write a second while replying, usage rows (one per STT decode,
    # partials included, scaled from bench_voice's clips to this utterance).
    reply_s = a.reply_tokens / slot_rate
    pg_writes = rate * (6 + reply_s + f["stt_decodes_per_turn"] * a.utterance / f["stt_speech_s_per_turn"])
    return {
        "users": a.users, "turns_per_s": rate, "speaking": speaking, "headroom_ms": headroom * 1000,
        "stages": stages, "daphne_replicas": replicas, "daphne_cpu_cores": web_cpu,
        "redis_ops_per_s": redis_ops, "redis_instances": math.ceil(redis_ops / a.redis_ops_capacity),
        "pg_writes_per_s": pg_writes, "pg_primaries": math.ceil(pg_writes / a.pg_writes_capacity),
    }


def render(result: dict, label: str) -> str:
    s = result["stages"]
    lines = [f"### {label}", "",
             f"{result['users']:,} users, {result['turns_per_s']:.0f} voice turns/s, "
             f"{result['speaking']:,.0f} speaking at once; queueing headroom at p99: "
             f"{result['headroom_ms']:.0f} ms (split across the three stages)", "",
             "| stage | work per turn | offered load | servers | nodes | p99 wait |",
             "|---|---|---|---|---|---|"]
    for name, title in (("stt", "speech to text"), ("llm", "LLM (slots)"), ("tts", "text to speech")):
        st = s[name]
        lines.append(f"| {title} | {st['work_s_per_turn'] * 1000:,.0f} ms | {st['offered_erlangs']:,.0f} erlangs | "
                     f"{st['servers']:,} | {st['nodes']:,} | {st['p99_wait_ms']:.0f} ms |")
    lines += ["", f"- Daphne replicas: **{result['daphne_replicas']}** ({result['daphne_cpu_cores']:.1f} cores "
              "of socket work)",
              f"- Redis: {result['redis_ops_per_s']:,.0f} commands/s → **{result['redis_instances']}** instance(s)",
              f"- PostgreSQL: {result['pg_writes_per_s']:,.0f} writes/s → **{result['pg_primaries']}** "
              f"{'primary' if result['pg_primaries'] == 1 else 'primaries'}",
              f"- Inference nodes in all: **{sum(st['nodes'] for st in s.values()):,}**", ""]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--voice", type=Path, help="bench_voice's JSON line (a file)")
    parser.add_argument("--load", type=Path, help="bench_load --json output")
    parser.add_argument("--users", type=int, default=10_000)
    parser.add_argument("--turn-every", type=float, default=30, help="ASSUMPTION: seconds between a user's turns")
    parser.add_argument("--utterance", type=float, default=3, help="ASSUMPTION: seconds of speech per turn")
    parser.add_argument("--reply-tokens", type=int, default=40, help="ASSUMPTION: tokens per spoken reply")
    parser.add_argument("--speech-s-per-token", type=float, default=0.3, help="seconds of speech per token")
    parser.add_argument("--target-ms", type=float, default=2000, help="p99 end of speech → first audio")
    parser.add_argument("--frame-cpu-ms", type=float, default=0.15,
                        help="ASSUMPTION: Daphne CPU per 20 ms audio frame (VAD buffering, consumer dispatch)")
    parser.add_argument("--socket-idle-cpu", type=float, default=0.0001,
                        help="ASSUMPTION: cores per idle socket (a ping every few seconds)")
    parser.add_argument("--llm-from-load", action="store_true",
                        help="take the LLM node's tokens/s from the load bench (only if it saturated the worker)")
    parser.add_argument("--replica-cpu", type=float, default=0.6, help="usable cores per Daphne replica")
    parser.add_argument("--redis-ops-capacity", type=float, default=80_000, help="ASSUMPTION: per Redis instance")
    parser.add_argument("--pg-writes-capacity", type=float, default=4_000, help="ASSUMPTION: per PG primary")
    parser.add_argument("--gpu", action="store_true", help="also size a GPU fleet with the --gpu-* factors")
    parser.add_argument("--gpu-stt-speedup", type=float, default=30, help="ASSUMPTION: GPU vs this 2-core node")
    parser.add_argument("--gpu-llm-speedup", type=float, default=40, help="ASSUMPTION: aggregate tokens/s ratio")
    parser.add_argument("--gpu-llm-slots", type=int, default=64, help="ASSUMPTION: concurrent streams per GPU")
    parser.add_argument("--gpu-tts-speedup", type=float, default=8, help="ASSUMPTION: GPU vs this 2-core node")
    parser.add_argument("--markdown", action="store_true", help="print markdown only")
    args = parser.parse_args()

    figures = dict(MEASURED)
    sources = ["defaults measured 2026-12-02 and 2026-12-05"]
    if args.voice:
        voice = json.loads(args.voice.read_text().strip().splitlines()[-1])
        figures.update({k: float(v) for k, v in voice.items() if k in MEASURED and v == v})
        sources.append(str(args.voice))
    if args.load:
        load = json.loads(args.load.read_text())
        if args.llm_from_load and load.get("tokens_per_s_aggregate"):
            figures["llm_tokens_per_s_node"] = float(load["tokens_per_s_aggregate"]) / load.get("gpu_workers", 1)
        web = load.get("processes", {}).get("web")
        replies = load.get("turns_done", 0) + load.get("api_done", 0)
        if web and replies and load.get("elapsed_s"):
            figures["web_cpu_s_per_turn"] = web["cpu_mean_pct"] / 100 * load["elapsed_s"] / replies
        sources.append(str(args.load))

    cpu = argparse.Namespace(**vars(args), llm_tokens_per_s_node=figures["llm_tokens_per_s_node"],
                             llm_slots=int(figures["llm_slots_per_node"]), stt_speedup=1, llm_speedup=1,
                             tts_speedup=1, path_speedup=1)
    out = [f"Inputs: {', '.join(sources)}", "", render(model(figures, cpu), "CPU nodes like this machine (measured)")]
    if args.gpu:
        gpu = argparse.Namespace(**vars(cpu))
        gpu.stt_speedup, gpu.llm_speedup, gpu.tts_speedup = args.gpu_stt_speedup, args.gpu_llm_speedup, \
            args.gpu_tts_speedup
        gpu.llm_slots = args.gpu_llm_slots
        gpu.path_speedup = 2.0  # ASSUMPTION: the first-audio path itself (p99 0.50 s on CPU) halves on a GPU
        out.append(render(model(figures, gpu), "GPUs (ASSUMED speedups, not measured here)"))
    print("\n".join(out))


if __name__ == "__main__":
    main()
