"""Text chat through the real stack (WebSocket → Daphne → Redis → gpu worker) against the bare
backend with the same prompt, measured in one run: the stack's overhead on time to first token."""

from __future__ import annotations

import asyncio
import json
import time

from django.core.management.base import BaseCommand

from chat.models import Assistant
from chat.services import conversation_create
from common.bench import as_json, median, percentile, table
from inference.bench_stack import BenchStack, backend_direct, direct_generate
from inference.selectors import route_resolve

QUESTION = "Explain in a few sentences why the sky is blue."


class Command(BaseCommand):
    help = "Measure text chat TTFT and tokens/s through the WebSocket stack against the bare backend."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--runs", type=int, default=20)
        parser.add_argument("--assistant", default="general")

    def handle(self, *args: object, runs: int, assistant: str, **options: object) -> None:
        from inference.services import bundled_models_register

        bundled_models_register()
        helper = Assistant.objects.get(slug=assistant)
        model = route_resolve(model=helper.route_alias, task="chat")[1][0].name
        messages = [{"role": "system", "content": helper.system_prompt}, {"role": "user", "content": QUESTION}]
        with BenchStack(models=[model]) as stack:
            backend = backend_direct(model)
            try:
                direct, stacked = [], []
                direct_generate(backend, 8, messages)
                asyncio.run(_turn(stack, helper, conversation_create(user=stack.user, assistant=helper).pk))
                for _ in range(runs):  # alternate so drift hits both sides alike
                    direct.append(direct_generate(backend, helper.max_tokens, messages))
                    conversation = conversation_create(user=stack.user, assistant=helper)
                    stacked.append(asyncio.run(_turn(stack, helper, conversation.pk)))
            finally:
                backend.unload()
        d_ttft, s_ttft = [r[0] for r in direct], [r[0] for r in stacked]
        figures = {
            "runs": runs, "model": model,
            "direct_ttft_p50_ms": percentile(d_ttft, 50), "direct_ttft_p99_ms": percentile(d_ttft, 99),
            "stack_ttft_p50_ms": percentile(s_ttft, 50), "stack_ttft_p99_ms": percentile(s_ttft, 99),
            "stack_overhead_p50_ms": percentile(s_ttft, 50) - percentile(d_ttft, 50),
            "stack_overhead_p99_ms": percentile(s_ttft, 99) - percentile(d_ttft, 99),
            "direct_tokens_per_s": median([r[1] for r in direct]),
            "stack_tokens_per_s": median([r[1] for r in stacked]),
        }
        overhead = figures["stack_overhead_p50_ms"]
        self.stdout.write(table([
            ("text TTFT, bare backend p50 / p99",
             f"{figures['direct_ttft_p50_ms']:.1f} / {figures['direct_ttft_p99_ms']:.1f}", "ms", ""),
            ("text TTFT, WebSocket stack p50 / p99",
             f"{figures['stack_ttft_p50_ms']:.1f} / {figures['stack_ttft_p99_ms']:.1f}", "ms", "<= 300"),
            ("stack overhead p50", overhead, "ms", f"<= 20: {'met' if overhead <= 20 else 'MISSED'}"),
            ("stack overhead p99", figures["stack_overhead_p99_ms"], "ms", ""),
            ("tokens/s bare / stack",
             f"{figures['direct_tokens_per_s']:.1f} / {figures['stack_tokens_per_s']:.1f}", "tok/s", ""),
        ]))
        self.stdout.write(as_json("chat", figures))


async def _turn(stack: BenchStack, assistant: Assistant, conversation_id: int) -> tuple[float, float, int]:
    """(ttft ms, tokens/s after the first, completion tokens) for one turn over the socket."""
    import websockets
    from asgiref.sync import sync_to_async

    cookie = await sync_to_async(stack.session_cookie)()
    url = stack.url.replace("http://", "ws://") + f"/ws/chat/{conversation_id}/"
    async with websockets.connect(url, additional_headers={"Cookie": cookie, "Origin": stack.url}) as socket:
        started = time.perf_counter()
        await socket.send(json.dumps({"type": "user_message", "text": QUESTION}))
        first = None
        while True:
            frame = json.loads(await socket.recv())
            if frame["type"] == "delta" and first is None:
                first = time.perf_counter()
            elif frame["type"] == "metrics":
                end = time.perf_counter()
                tokens = frame["completion_tokens"]
                return (first - started) * 1000, (tokens - 1) / (end - first), tokens
            elif frame["type"] == "error":
                raise RuntimeError(frame["message"])
