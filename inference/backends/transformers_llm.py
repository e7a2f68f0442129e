"""Chat models run by transformers/torch directly: for models with no CTranslate2 conversion.

Slower than CTranslate2 on a CPU and without a batcher; one request at a time per model.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator

from inference.backends.base import Backend, BackendError, GenerationChunk, GenerationRequest


class TransformersChatBackend(Backend):
    task = "chat"

    def load(self) -> None:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        path = str(self.spec.path)
        dtype = torch.float16 if self.device == "cuda" else torch.float32
        try:
            self.tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
            self.model = AutoModelForCausalLM.from_pretrained(path, torch_dtype=dtype, local_files_only=True)
        except (RuntimeError, OSError, ValueError) as exc:
            raise BackendError(f"Could not load {self.spec.name}: {exc}", code="load_failed") from exc
        self.model.to(self.device).eval()
        self.context_length = int(self.spec.params.get("context_length", 2048))
        self.lock = threading.Lock()

    def unload(self) -> None:
        self.model = None

    def generate(self, request: GenerationRequest) -> Iterator[GenerationChunk]:
        import torch
        from transformers import StoppingCriteria, StoppingCriteriaList, TextIteratorStreamer

        messages = request.messages
        if not messages or messages[0].get("role") != "system":
            system = self.spec.params.get("system_prompt", "You are a helpful assistant.")
            messages = [{"role": "system", "content": system}, *messages]
        ids = self.tokenizer.apply_chat_template(messages, add_generation_prompt=True, return_tensors="pt")
        prompt_tokens = int(ids.shape[-1])
        room = self.context_length - prompt_tokens
        if room <= 0:
            raise BackendError("The conversation is longer than the model's context.", code="context_length_exceeded",
                               retryable=False)

        class Canceled(StoppingCriteria):
            def __call__(self, input_ids, scores, **kwargs) -> bool:
                return request.is_canceled()

        streamer = TextIteratorStreamer(self.tokenizer, skip_prompt=True, skip_special_tokens=True)
        kwargs = {
            "input_ids": ids.to(self.device), "max_new_tokens": min(request.max_tokens, room), "streamer": streamer,
            "do_sample": request.temperature > 0, "stopping_criteria": StoppingCriteriaList([Canceled()]),
        }
        if request.temperature > 0:
            kwargs.update(temperature=request.temperature, top_p=request.top_p)
        result: dict[str, int] = {}

        def run() -> None:
            with self.lock, torch.inference_mode():
                output = self.model.generate(**kwargs)
            result["completion_tokens"] = int(output.shape[-1]) - prompt_tokens

        thread = threading.Thread(target=run, daemon=True)
        thread.start()
        for text in streamer:
            if text:
                yield GenerationChunk(text=text)
        thread.join()
        completion = result.get("completion_tokens", 0)
        if request.is_canceled():
            reason = "canceled"
        else:
            reason = "length" if completion >= kwargs["max_new_tokens"] else "stop"
        yield GenerationChunk("", reason, prompt_tokens, completion)
