"""A guard against replies that loop: small models (and any model at low temperature) can fall
into repeating one sentence until max_tokens. The guard ends such a reply after the third repeat."""

from __future__ import annotations

MIN_PERIOD = 20  # shorter repeats are normal text: table rules, list markers, "- [ ]"
MAX_PERIOD = 400
REPEATS = 3
CHECK_EVERY_CHARS = 16


class RepetitionGuard:
    def __init__(self, *, repeats: int = REPEATS, min_period: int = MIN_PERIOD, max_period: int = MAX_PERIOD):
        self.repeats, self.min_period, self.max_period = repeats, min_period, max_period
        self.text = ""
        self.checked_at = 0

    def push(self, delta: str) -> bool:
        """Add streamed text; True once the reply ends in `repeats` copies of one run of text."""
        self.text += delta
        if len(self.text) - self.checked_at < CHECK_EVERY_CHARS:
            return False
        self.checked_at = len(self.text)
        return self.looping()

    def looping(self) -> bool:
        # Whitespace differences between copies ("… again.\n" vs "… again. ") don't break a loop.
        text = " ".join(self.text.split())
        longest = min(self.max_period, len(text) // self.repeats)
        for period in range(self.min_period, longest + 1):
            unit = text[-period:]
            if text.endswith(unit * self.repeats):
                return True
        return False
