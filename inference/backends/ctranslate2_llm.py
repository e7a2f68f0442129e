"""Chat models converted to CTranslate2, with a per-model batcher.

Concurrent requests to one model are decoded together in one `generate_batch` call, which on
a CPU costs little more per step than a single sequence (decoding is memory-bound), so four
streams give far more aggregate tokens per second than one. CTranslate2 has no continuous
batching and one set of sampling settings per call, so a request that arrives while a batch is
decoding gets in by stopping the batch and restarting it: the running sequences continue from
their prompt plus what they generated so far, which costs a re-prefill of all of that.

Preemption is therefore rationed. A batch decodes a minimum slice (PREEMPT_MIN_SECONDS or
PREEMPT_MIN_STEPS, counted from its first token, not from the start of its prefill) before anyone
may stop it, and a stop must fit the re-prefill budget: since the batcher was last idle, all
prefills together may cost at most PREFILL_BUDGET times the prompt tokens that arrived. Once the
budget is spent the batch runs to its end. Preempted sequences queue behind the ones that
were waiting, so two groups with different settings take turns instead of one starving the
other; prompt_tokens_processed on the last chunk counts every prefill, re-prefills included.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

from inference.backends.base import Backend, BackendError, GenerationChunk, GenerationRequest
from inference.devices import cpu_threads

logger = logging.getLogger(__name__)

MAX_BATCH = 8
PREEMPT_MIN_SECONDS = 1.5
PREEMPT_MIN_STEPS = 32
PREFILL_BUDGET = 1.5
CPU_COMPUTE_FALLBACK = {"int8_float16": "int8", "float16": "float32", "bfloat16": "float32", "int8_bfloat16": "int8"}
_FINISHED = object()


@dataclass(eq=False)
class _Sequence:
    """One request inside the batcher. Token ids flow to `out`; the request thread reads them."""

    prompt_ids: list[int]
    max_new: int
    sampling: tuple[float, float, float]  # temperature, top_p, repetition penalty
    is_canceled: object
    generated: list[int] = field(default_factory=list)
    processed: int = 0  # prompt tokens prefilled for this sequence so far, re-prefills included
    out: queue.SimpleQueue = field(default_factory=queue.SimpleQueue)
    finish_reason: str | None = None
    error: BackendError | None = None


class _Batcher:
    def __init__(self, generator, tokenizer, end_ids: set[int], end_tokens: list[str]) -> None:
        self.generator = generator
        self.tokenizer = tokenizer
        self.end_ids = end_ids
        self.end_tokens = end_tokens
        self.pending: list[_Sequence] = []
        self.cond = threading.Condition()
        self.running = True
        # Prompt tokens brought and prefilled since the batcher was last idle: the re-prefill budget.
        self.brought = 0
        self.spent = 0
        self.thread = threading.Thread(target=self._loop, name="ct2-batcher", daemon=True)
        self.thread.start()

    def submit(self, seq: _Sequence) -> None:
        with self.cond:
            self.pending.append(seq)
            self.brought += len(seq.prompt_ids)
            self.cond.notify()

    def stop(self) -> None:
        with self.cond:
            self.running = False
            self.cond.notify()
        self.thread.join(timeout=30)

    def _take(self) -> list[_Sequence]:
        """The oldest waiting sequence and every other one that shares its sampling settings."""
        with self.cond:
            while True:
                while self.running and not self.pending:
                    self.brought = self.spent = 0  # idle: a new busy period starts with a fresh budget
                    self.cond.wait()
                if not self.running:
                    return []
                # A request canceled while it waited leaves without costing a prefill.
                for seq in [seq for seq in self.pending if seq.is_canceled()]:
                    self.pending.remove(seq)
                    seq.finish_reason = "canceled"
                    seq.out.put(_FINISHED)
                if self.pending:
                    break
            key = self.pending[0].sampling
            batch = [seq for seq in self.pending if seq.sampling == key][:MAX_BATCH]
            self.pending = [seq for seq in self.pending if seq not in batch]
            return batch

    def _may_preempt(self, batch: list[_Sequence], stopped: list[bool], first_step: float, step: int) -> bool:
        """Stop this batch for the waiting ones only after its slice, and only if the re-prefill is affordable."""
        if not self.pending or (time.monotonic() - first_step < PREEMPT_MIN_SECONDS and step < PREEMPT_MIN_STEPS):
            return False
        with self.cond:
            waiting = [seq for seq in self.pending if not seq.is_canceled()]
            if not waiting or not self.running:
                return False
            cost = sum(len(seq.prompt_ids) + len(seq.generated) for i, seq in enumerate(batch) if not stopped[i])
            # Every waiting sequence will cost a prefill when it runs (its first, or a re-prefill); reserve it.
            reserved = sum(len(seq.prompt_ids) + len(seq.generated) for seq in waiting)
            return self.spent + reserved + cost <= PREFILL_BUDGET * self.brought

    def _loop(self) -> None:
        while True:
            batch = self._take()
            if not batch:
                for seq in self.pending:
                    seq.error = BackendError("The model was unloaded.", code="model_unloaded")
                    seq.out.put(_FINISHED)
                return
            try:
                unfinished = self._run(batch)
            except Exception as exc:
                logger.exception("batch generation failed")
                for seq in batch:
                    seq.error = BackendError(f"Generation failed: {exc}", code="generation_failed")
                    seq.out.put(_FINISHED)
                continue
            if unfinished:
                with self.cond:
                    # Behind the ones they were stopped for: groups with different settings take turns.
                    self.pending = self.pending + unfinished

    def _run(self, batch: list[_Sequence]) -> list[_Sequence]:
        stopped = [False] * len(batch)
        preempted = [False] * len(batch)
        first_step: list[float] = []  # when the first token came, i.e. the prefill was done
        # Decided once per step for the whole batch: every sequence stops at the same step, or none does.
        decision: dict[int, bool] = {}

        def finish(index: int, reason: str) -> bool:
            stopped[index] = True
            batch[index].finish_reason = reason
            batch[index].out.put(_FINISHED)
            return True

        def on_step(step) -> bool:
            index = step.batch_id
            if stopped[index]:
                return True
            seq = batch[index]
            if seq.is_canceled():
                return finish(index, "canceled")
            if step.token_id in self.end_ids:
                return finish(index, "stop")
            seq.generated.append(step.token_id)
            seq.out.put(step.token_id)
            if len(seq.generated) >= seq.max_new:
                return finish(index, "length")
            if step.is_last:
                return finish(index, "stop")
            if not first_step:
                first_step.append(time.monotonic())
            if not self.running:  # unloading: end the batch at once
                seq.error = BackendError("The model was unloaded.", code="model_unloaded")
                return finish(index, "canceled")
            if step.step not in decision:
                decision[step.step] = self._may_preempt(batch, stopped, first_step[0], step.step)
            if decision[step.step]:  # stop here and restart with the ones waiting
                stopped[index] = preempted[index] = True
                return True
            return False

        temperature, top_p, repetition_penalty = batch[0].sampling
        prompts = [self.tokenizer.convert_ids_to_tokens(seq.prompt_ids + seq.generated) for seq in batch]
        with self.cond:
            for seq in batch:
                seq.processed += len(seq.prompt_ids) + len(seq.generated)
                self.spent += len(seq.prompt_ids) + len(seq.generated)
        self.generator.generate_batch(
            prompts,
            max_length=max(seq.max_new - len(seq.generated) for seq in batch),
            sampling_topk=1 if temperature <= 0 else 50,
            sampling_topp=top_p,
            sampling_temperature=max(temperature, 1e-3),
            repetition_penalty=repetition_penalty,
            include_prompt_in_result=False,
            end_token=self.end_tokens,
            callback=on_step,
        )
        unfinished = []
        for index, seq in enumerate(batch):
            if preempted[index]:
                unfinished.append(seq)
            elif not stopped[index]:  # ended without a callback for its last step
                finish(index, "length" if len(seq.generated) >= seq.max_new else "stop")
        return unfinished


class _Detokenizer:
    """Incremental decoding that never emits half a multi-byte character or a split word piece."""

    def __init__(self, tokenizer) -> None:
        self.tokenizer = tokenizer
        self.ids: list[int] = []
        self.prefix_offset = 0
        self.read_offset = 0

    def push(self, token_id: int) -> str:
        self.ids.append(token_id)
        prefix = self.tokenizer.decode(self.ids[self.prefix_offset : self.read_offset], skip_special_tokens=True)
        text = self.tokenizer.decode(self.ids[self.prefix_offset :], skip_special_tokens=True)
        if len(text) > len(prefix) and not text.endswith("\ufffd"):
            self.prefix_offset = self.read_offset
            self.read_offset = len(self.ids)
            return text[len(prefix) :]
        return ""


class CTranslate2ChatBackend(Backend):
    task = "chat"

    def load(self) -> None:
        import ctranslate2
        from transformers import AutoTokenizer

        path = str(self.spec.path)
        compute_type = self.spec.quantization or "int8"
        if self.device == "cuda" and compute_type == "int8":
            compute_type = "int8_float16"
        if self.device == "cpu" and compute_type in CPU_COMPUTE_FALLBACK:
            # A GPU variant activated on a CPU host: CTranslate2 refuses float16 here rather than falling back.
            logger.warning("%s: %s is not available on CPU; computing in %s", self.spec.name, compute_type,
                           CPU_COMPUTE_FALLBACK[compute_type])
            compute_type = CPU_COMPUTE_FALLBACK[compute_type]
        try:
            self.generator = ctranslate2.Generator(
                path, device=self.device, compute_type=compute_type, intra_threads=cpu_threads()
            )
            # The converted folder's config.json has no model_type, which makes transformers
            # mistake Qwen's (correct) pre-tokenizer regex for a known-broken Mistral one.
            self.tokenizer = AutoTokenizer.from_pretrained(path, fix_mistral_regex=False)
        except (RuntimeError, OSError, ValueError) as exc:
            raise BackendError(f"Could not load {self.spec.name} from {path}: {exc}", code="load_failed") from exc
        end_tokens = [token for token in self.spec.params.get("stop_tokens", []) if token]
        if self.tokenizer.eos_token and self.tokenizer.eos_token not in end_tokens:
            end_tokens.append(self.tokenizer.eos_token)
        self.end_tokens = end_tokens
        self.end_ids = {self.tokenizer.convert_tokens_to_ids(token) for token in end_tokens}
        self.context_length = int(self.spec.params.get("context_length", 2048))
        self.batcher = _Batcher(self.generator, self.tokenizer, self.end_ids, self.end_tokens)

    def unload(self) -> None:
        batcher = getattr(self, "batcher", None)
        if batcher:
            batcher.stop()
            batcher.generator = None
        generator = getattr(self, "generator", None)
        self.generator = None
        self.batcher = None
        if generator is not None:
            # Free the weights here, in the unloading thread, rather than whenever the last reference
            # happens to go (a garbage collection could run it on one of CTranslate2's own threads).
            generator.unload_model()

    def prompt_ids(self, messages: list[dict[str, str]]) -> list[int]:
        if not messages or messages[0].get("role") != "system":
            # Qwen's template inserts its own system message when none is given.
            system = self.spec.params.get("system_prompt", "You are a helpful assistant.")
            messages = [{"role": "system", "content": system}, *messages]
        text = self.tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
        return self.tokenizer.encode(text, add_special_tokens=False)

    def generate(self, request: GenerationRequest) -> Iterator[GenerationChunk]:
        if getattr(self, "batcher", None) is None:
            raise BackendError(f"{self.spec.name} is not loaded.", code="model_unloaded")
        prompt_ids = self.prompt_ids(request.messages)
        room = self.context_length - len(prompt_ids)
        if room <= 0:
            raise BackendError(
                f"The conversation is {len(prompt_ids)} tokens; {self.spec.name} takes at most "
                f"{self.context_length}. Shorten the messages.",
                code="context_length_exceeded", retryable=False,
            )
        repetition_penalty = request.repeat_penalty or self.spec.params.get("repeat_penalty") or 1.0
        seq = _Sequence(
            prompt_ids=prompt_ids, max_new=min(request.max_tokens, room),
            sampling=(round(request.temperature, 3), round(request.top_p, 3), round(float(repetition_penalty), 3)),
            is_canceled=request.is_canceled,
        )
        self.batcher.submit(seq)
        detok = _Detokenizer(self.tokenizer)
        text, emitted = "", 0
        stops = [stop for stop in request.stop if stop]
        while True:
            item = seq.out.get()
            if item is _FINISHED:
                break
            delta = detok.push(item)
            if not delta:
                continue
            text += delta
            if stops:
                hit = min((text.find(stop) for stop in stops if stop in text), default=-1)
                if hit >= 0:
                    seq.is_canceled = lambda: True  # stop decoding at the next step
                    if hit > emitted:
                        yield GenerationChunk(text=text[emitted:hit])
                    yield GenerationChunk("", "stop", len(prompt_ids), len(seq.generated),
                                          prompt_tokens_processed=seq.processed)
                    return
                # Hold back text that could be the start of a stop string.
                safe = len(text) - max(len(stop) - 1 for stop in stops)
                if safe > emitted:
                    yield GenerationChunk(text=text[emitted:safe])
                    emitted = safe
                continue
            emitted = len(text)
            yield GenerationChunk(text=delta)
        if seq.error:
            raise seq.error
        if emitted < len(text):
            yield GenerationChunk(text=text[emitted:])
        yield GenerationChunk("", seq.finish_reason or "stop", len(prompt_ids), len(seq.generated),
                              prompt_tokens_processed=seq.processed)

