from __future__ import annotations

from django import forms

from arena.services import DEFAULT_MAX_TOKENS, MAX_MAX_TOKENS, MAX_PROMPT_CHARS, MIN_MAX_TOKENS
from common.forms import TextField

ANSWER_LENGTHS = [(64, "Short (64 tokens)"), (DEFAULT_MAX_TOKENS, f"Medium ({DEFAULT_MAX_TOKENS} tokens)"),
                  (512, "Long (512 tokens)")]


class BattleCreateForm(forms.Form):
    prompt = TextField(max_length=MAX_PROMPT_CHARS, strip=True)
    max_tokens = forms.IntegerField(min_value=MIN_MAX_TOKENS, max_value=MAX_MAX_TOKENS, required=False)
