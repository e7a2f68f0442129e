"""Text chat through the real stack (WebSocket → Daphne → Redis → gpu worker) against the bare backend
with the same prompt, measured in one run: the stack's overhead on time to first token.

The bare backend runs in a process of its own (inference.bench_direct), loaded as the worker loads it
and with its thread settings: in this process it shared the interpreter with Django and decoded slower
than the worker, which made the stack look faster than the model. Tokens/s counts the server's
completion tokens between the first and the last delta on both sides (inference.bench_stack)."""

from __future__ import annotations

import tempfile
from pathlib import Path

from django.core.management.base import BaseCommand, CommandParser

from chat.models import Assistant
from chat.services import conversation_create
from common.bench import as_json, median, percentile, table
from inference.bench_direct import DirectProcess
from inference.bench_stack import BenchStack, StreamResult, child_env
from inference.selectors import route_resolve

QUESTION = "Explain in a few sentences why the sky is blue."


class Command(BaseCommand):
    help = "Measure text chat TTFT and tokens/s through the WebSocket stack against the bare backend."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--runs", type=int, default=20)
        parser.add_argument("--assistant", default="general")

    def handle(self, *args: object, runs: int, assistant: str, **options: object) -> None:
        from inference.services import bundled_models_register

        bundled_models_register()
        helper = Assistant.objects.get(slug=assistant)
        model = route_resolve(model=helper.route_alias, task="chat")[1][0].name
        messages = [{"role": "system", "content": helper.system_prompt}, {"role": "user", "content": QUESTION}]
        with tempfile.TemporaryDirectory() as tmp, BenchStack(models=[model]) as stack, DirectProcess(
                model, env=child_env(), log=Path(tmp) / "direct.log") as direct:
            cookie = stack.session_cookie()
            direct.generate(messages, 8, helper.temperature)
            _checked(stack.ws_turn(conversation_create(user=stack.user, assistant=helper).pk, QUESTION, cookie))
            direct_runs, stacked = [], []
            for _ in range(runs):  # alternate, one at a time, so drift hits both sides alike
                direct_runs.append(direct.generate(messages, helper.max_tokens, helper.temperature))
                conversation = conversation_create(user=stack.user, assistant=helper)
                stacked.append(_checked(stack.ws_turn(conversation.pk, QUESTION, cookie)))
        d_ttft, s_ttft = [r["ttft_ms"] for r in direct_runs], [r.ttft_ms for r in stacked]
        overhead = [s - d for s, d in zip(s_ttft, d_ttft, strict=True)]  # per pair, on the same prompt
        figures = {
            "runs": runs, "model": model,
            "direct_ttft_p50_ms": percentile(d_ttft, 50), "direct_ttft_p99_ms": percentile(d_ttft, 99),
            "stack_ttft_p50_ms": percentile(s_ttft, 50), "stack_ttft_p99_ms": percentile(s_ttft, 99),
            "stack_overhead_p50_ms": percentile(overhead, 50), "stack_overhead_p99_ms": percentile(overhead, 99),
            "direct_tokens_per_s": median([r["decode_tps"] for r in direct_runs]),
            "stack_tokens_per_s": median([r.decode_tps for r in stacked]),
        }
        overhead_p50 = figures["stack_overhead_p50_ms"]
        self.stdout.write(table([
            ("text TTFT, bare backend (own process) p50 / p99",
             f"{figures['direct_ttft_p50_ms']:.1f} / {figures['direct_ttft_p99_ms']:.1f}", "ms", ""),
            ("text TTFT, WebSocket stack p50 / p99",
             f"{figures['stack_ttft_p50_ms']:.1f} / {figures['stack_ttft_p99_ms']:.1f}", "ms",
             f"p50 <= 300: {'✓ met' if figures['stack_ttft_p50_ms'] <= 300 else '✗ MISSED'}"),
            ("stack overhead p50 (paired)", overhead_p50, "ms",
             f"<= 20: {'✓ met' if overhead_p50 <= 20 else '✗ MISSED'}"),
            ("stack overhead p99 (paired)", figures["stack_overhead_p99_ms"], "ms", ""),
            ("decode tokens/s bare / stack",
             f"{figures['direct_tokens_per_s']:.1f} / {figures['stack_tokens_per_s']:.1f}", "tok/s", ""),
        ]))
        self.stdout.write(as_json("chat", figures))


def _checked(result: StreamResult) -> StreamResult:
    if not result.ok:
        raise RuntimeError(f"a chat turn failed: {result.error}")
    return result
