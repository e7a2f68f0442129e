"""Chat models run by transformers/torch directly: for models with no CTranslate2 conversion.

`source` is a folder transformers can load (config.json + safetensors), a `.gguf` file, or a folder
holding one `.gguf`. transformers parses GGUF metadata in pure Python and dequantises every tensor
to float32, which takes tens of seconds even for a 135M model, so the first load of a GGUF saves
that float32 copy under var/models/transformers-gguf/ and later loads read it in about a second.

Decoding is a plain token loop over the KV cache rather than `model.generate` in a helper thread:
cancellation, stop strings and token counts are then exact, and an abandoned request needs no
thread to be stopped.
"""

from __future__ import annotations

import fcntl
import hashlib
import logging
import shutil
import tempfile
import threading
from collections import deque
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from inference.backends.base import Backend, BackendError, GenerationChunk, GenerationRequest

logger = logging.getLogger(__name__)

# How often a request waiting for the model looks at its cancel flag.
QUEUE_POLL_SECONDS = 0.2


class _Turns:
    """A first-come, first-served lock that tells each waiter its place in line (1 = next)."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._line: deque[object] = deque()
        self._busy = False

    def acquire(self, *, on_queued: Callable[[int], None], is_canceled: Callable[[], bool]) -> bool:
        """Wait for the model; False if the request was canceled while it waited."""
        ticket, reported = object(), 0
        with self._cond:
            self._line.append(ticket)
            try:
                while self._busy or self._line[0] is not ticket:
                    position = self._line.index(ticket) + 1
                    if position != reported:
                        reported = position
                        # The callback publishes to Redis; don't hold up the line while it does.
                        self._cond.release()
                        try:
                            on_queued(position)
                        finally:
                            self._cond.acquire()
                        continue
                    if is_canceled():
                        return False
                    self._cond.wait(timeout=QUEUE_POLL_SECONDS)
                self._busy = True
                return True
            finally:
                self._line.remove(ticket)
                # Everyone behind moved up a place (or, if we gave up, someone is now at the head).
                self._cond.notify_all()

    def release(self) -> None:
        with self._cond:
            self._busy = False
            self._cond.notify_all()


class _Detokenizer:
    """Incremental decoding that never emits half a multi-byte character or a split word piece."""

    def __init__(self, tokenizer: Any) -> None:
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


def weights_locate(path: Path | None, gguf_file: str | None = None) -> tuple[Path, str | None]:
    """(folder, GGUF file name or None) for a resolved source path."""
    if path is None or not path.exists():
        raise BackendError(f"Model weights not found at {path}.", code="load_failed")
    if path.is_file():
        if path.suffix != ".gguf":
            raise BackendError(f"{path} is a file but not a .gguf; point the source at the model's folder "
                               "or at a .gguf file.", code="load_failed")
        return path.parent, path.name
    if gguf_file:
        return path, gguf_file
    if (path / "config.json").exists():
        return path, None
    ggufs = sorted(path.glob("*.gguf"))
    if len(ggufs) == 1:
        return path, ggufs[0].name
    raise BackendError(f"{path} has no config.json and {len(ggufs)} .gguf files; set params.gguf_file "
                       "or point the source at one file.", code="load_failed")


def gguf_converted(gguf: Path) -> Path:
    """A float32 safetensors copy of `gguf` (made once, then reused), with its tokenizer and chat template."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from inference.install import MODELS_DIR

    # Keyed by path, size and mtime rather than a content hash: hashing a GB every load would cost
    # seconds, and a spec with a sha256 is checked against the file itself before we get here.
    stat = gguf.stat()
    key = hashlib.sha256(f"{gguf.resolve()}:{stat.st_size}:{stat.st_mtime_ns}".encode()).hexdigest()[:16]
    root = MODELS_DIR / "transformers-gguf"
    target = root / f"{gguf.stem}-{key}"
    if (target / "config.json").exists():
        return target
    root.mkdir(parents=True, exist_ok=True)
    # The test process and a worker (or two workers) may load the same GGUF at once: one converts,
    # the other waits and reuses the result. The copy appears by rename, so it is complete or absent.
    with (root / f"{target.name}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if (target / "config.json").exists():
            return target
        staging = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=root))
        try:
            tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name, local_files_only=True)
            model = AutoModelForCausalLM.from_pretrained(
                gguf.parent, gguf_file=gguf.name, dtype=torch.float32, local_files_only=True
            )
            # Already dequantised: a leftover GGUF quantizer would make the saved config unloadable.
            model.hf_quantizer = None
            if hasattr(model.config, "quantization_config"):
                del model.config.quantization_config
            model.save_pretrained(staging)
            tokenizer.save_pretrained(staging)
            del model
            staging.rename(target)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
    logger.info("converted %s for transformers into %s", gguf.name, target)
    return target


class TransformersChatBackend(Backend):
    task = "chat"

    def load(self) -> None:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        params = self.spec.params
        directory, gguf_file = weights_locate(self.spec.path, params.get("gguf_file"))
        dtype = torch.float16 if self.device == "cuda" else torch.float32
        try:
            if gguf_file and params.get("gguf_cache", True):
                directory, gguf_file = gguf_converted(directory / gguf_file), None
            extra = {"gguf_file": gguf_file} if gguf_file else {}
            self.tokenizer = AutoTokenizer.from_pretrained(directory, local_files_only=True, **extra)
            model = AutoModelForCausalLM.from_pretrained(directory, dtype=dtype, local_files_only=True, **extra)
        except (RuntimeError, OSError, ValueError, KeyError) as exc:
            raise BackendError(f"Could not load {self.spec.name} from {directory}: {exc}", code="load_failed") from exc
        self.model = model.to(self.device).eval()
        config_context = int(getattr(model.config, "max_position_embeddings", 0) or 0)
        self.context_length = int(params.get("context_length") or config_context or 2048)
        self.end_ids = self._end_ids()
        # One generation at a time per model. Two decodes on one CPU model give no more tokens per
        # second (each forward pass already uses every core) but double the KV-cache memory, and a
        # transformers model is not documented as safe to call from several threads at once.
        self.turns = _Turns()

    def _end_ids(self) -> set[int]:
        ids: set[int] = set()
        eos = getattr(self.model.generation_config, "eos_token_id", None)
        ids.update(eos if isinstance(eos, list) else [eos])
        ids.add(self.tokenizer.eos_token_id)
        unk = self.tokenizer.unk_token_id
        for token in self.spec.params.get("stop_tokens", []):
            token_id = self.tokenizer.convert_tokens_to_ids(token)
            if token_id is not None and token_id != unk:
                ids.add(token_id)
        ids.discard(None)
        return ids

    def unload(self) -> None:
        self.model = None

    def prompt_ids(self, messages: list[dict[str, str]]) -> list[int]:
        if not messages or messages[0].get("role") != "system":
            # Chat templates (SmolLM2's, Qwen's) otherwise insert a system message of their own.
            system = self.spec.params.get("system_prompt", "You are a helpful assistant.")
            messages = [{"role": "system", "content": system}, *messages]
        text = self.tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
        return self.tokenizer.encode(text, add_special_tokens=False)

    def generate(self, request: GenerationRequest) -> Iterator[GenerationChunk]:
        model = getattr(self, "model", None)
        if model is None:
            raise BackendError(f"{self.spec.name} is not loaded.", code="model_unloaded")
        prompt_ids = self.prompt_ids(request.messages)
        prompt_tokens = len(prompt_ids)
        room = self.context_length - prompt_tokens
        if room <= 0:
            raise BackendError(
                f"The conversation is {prompt_tokens} tokens; {self.spec.name} takes at most "
                f"{self.context_length}. Shorten the messages.",
                code="context_length_exceeded", retryable=False,
            )
        if not self.turns.acquire(on_queued=request.on_queued, is_canceled=request.is_canceled):
            yield GenerationChunk("", "canceled", prompt_tokens, 0, prompt_tokens_processed=0)
            return
        # Held until this generator finishes or is closed; the task iterates it without pausing.
        try:
            yield from self._decode(model, request, prompt_ids, min(request.max_tokens, room))
        finally:
            self.turns.release()

    def _sampler(self, request: GenerationRequest) -> Callable[[Any, Any], int]:
        """(token history, next-token logits) -> the chosen token id."""
        import torch
        from transformers.generation import (
            LogitsProcessorList,
            RepetitionPenaltyLogitsProcessor,
            TemperatureLogitsWarper,
            TopPLogitsWarper,
        )

        processors = LogitsProcessorList()
        penalty = request.repeat_penalty or self.spec.params.get("repeat_penalty")
        if penalty and float(penalty) != 1.0:
            processors.append(RepetitionPenaltyLogitsProcessor(float(penalty)))
        greedy = request.temperature <= 0
        if not greedy:
            processors.append(TemperatureLogitsWarper(request.temperature))
            if request.top_p < 1.0:
                processors.append(TopPLogitsWarper(request.top_p))

        def pick(history: Any, logits: Any) -> int:
            scores = processors(history, logits) if processors else logits
            if greedy:
                return int(scores.argmax(dim=-1))
            return int(torch.multinomial(torch.softmax(scores, dim=-1), num_samples=1))

        return pick

    def _decode(
        self, model: Any, request: GenerationRequest, prompt_ids: list[int], max_new: int
    ) -> Iterator[GenerationChunk]:
        import torch
        from transformers import DynamicCache

        pick = self._sampler(request)
        history = torch.tensor([prompt_ids], device=self.device)
        step_input = history
        cache = DynamicCache(config=model.config)
        generated: list[int] = []
        detok = _Detokenizer(self.tokenizer)
        stops = [stop for stop in request.stop if stop]
        # Text that could be the start of a stop string is held back until it can't be.
        hold = max((len(stop) for stop in stops), default=1) - 1
        text, emitted, finish = "", 0, "length"
        while len(generated) < max_new:
            if request.is_canceled():
                finish = "canceled"
                break
            try:
                with torch.inference_mode():
                    out = model(input_ids=step_input, past_key_values=cache, use_cache=True, logits_to_keep=1)
                    token = pick(history, out.logits[:, -1, :].float())
            except RuntimeError as exc:
                raise BackendError(f"Generation failed: {exc}", code="generation_failed") from exc
            if token in self.end_ids:
                finish = "stop"
                break
            generated.append(token)
            step_input = torch.tensor([[token]], device=self.device)
            history = torch.cat([history, step_input], dim=-1)
            delta = detok.push(token)
            if not delta:
                continue
            text += delta
            hit = min((text.find(stop) for stop in stops if stop in text), default=-1)
            if hit >= 0:
                text, finish = text[:hit], "stop"
                break
            safe = len(text) - hold
            if safe > emitted:
                yield GenerationChunk(text=text[emitted:safe])
                emitted = safe
        if len(text) > emitted:
            yield GenerationChunk(text=text[emitted:])
        # No prompt cache: every request prefills its whole prompt.
        yield GenerationChunk("", finish, len(prompt_ids), len(generated), prompt_tokens_processed=len(prompt_ids))
