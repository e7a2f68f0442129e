"""A transcript that grows while the user speaks (LocalAgreement-2, after Macháček et al.'s
whisper_streaming): the growing utterance is decoded again and again, and a word is confirmed once two
decodes in a row agree on it and on everything before it. Confirmed words never change, so a page can
show them as settled while the tail still moves.

Each decode covers a window: the audio since the last cut. Once the window is long, it is cut after the
last segment all of whose words are confirmed, and later decodes see only the rest, prompted with the
confirmed text. The final transcript is the confirmed text before the window plus one decode of the
window: at the end only the unconfirmed tail is decoded again.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

SAMPLE_RATE = 16000
BYTES_PER_SECOND = SAMPLE_RATE * 2
# A window is cut once it is longer than this (and a confirmed segment ends inside it).
CUT_AFTER_SECONDS = 6.0
# A segment must end this far before the window's end to be cut at: timestamps are approximate.
CUT_MARGIN_SECONDS = 1.0
PROMPT_CHARS = 200
# Decodes of less audio than this confirm nothing: on a fraction of a second Whisper guesses, and two
# guesses can agree ("Please please" for the start of "Please summarize").
MIN_CONFIRM_SECONDS = 1.0

_NOT_WORD = re.compile(r"[^\w']+")


def _key(word: str) -> str:
    """What two decodes must agree on: the word without case or punctuation."""
    return _NOT_WORD.sub("", word.lower())


@dataclass
class Hypothesis:
    """One decode of the window: its words, its segments, and how much audio it covered (bytes)."""

    words: list[str]
    segments: list[dict]
    end: int


@dataclass
class LiveTranscript:
    confirmed: list[str] = field(default_factory=list)  # the whole utterance's confirmed words
    window_start: int = 0  # byte offset of the decode window in the utterance
    before_window: int = 0  # how many confirmed words lie before the window
    previous: Hypothesis | None = None  # the latest decode of the current window
    spec: str = ""  # the model that made it

    # ---------------------------------------------------------------- what to decode

    def window(self, audio: bytes) -> bytes:
        return audio[self.window_start:]

    def prompt(self) -> str:
        """The confirmed text before the window, so a decode of the window continues it."""
        return " ".join(self.confirmed[: self.before_window])[-PROMPT_CHARS:]

    # ---------------------------------------------------------------- a decode came back

    def update(self, *, text: str, segments: list[dict], end: int) -> list[str]:
        """Take a decode of the window up to byte `end` of the utterance; returns the words it confirmed."""
        words = text.split()
        in_window = len(self.confirmed) - self.before_window
        newly: list[str] = []
        heard = self.previous.end - self.window_start if self.previous else 0
        if self.previous is not None and heard >= MIN_CONFIRM_SECONDS * BYTES_PER_SECOND:
            agreed = 0
            for mine, theirs in zip(words, self.previous.words, strict=False):
                if _key(mine) != _key(theirs):
                    break
                agreed += 1
            if agreed > in_window:
                newly = words[in_window:agreed]
                self.confirmed.extend(newly)
        self.previous = Hypothesis(words=words, segments=segments, end=end)
        self._cut()
        return newly

    def _cut(self) -> None:
        """Move the window's start past the last fully confirmed segment, once the window is long."""
        hypothesis = self.previous
        if hypothesis is None or (hypothesis.end - self.window_start) / BYTES_PER_SECOND < CUT_AFTER_SECONDS:
            return
        in_window = len(self.confirmed) - self.before_window
        window_seconds = (hypothesis.end - self.window_start) / BYTES_PER_SECOND
        counted, cut_words, cut_at = 0, 0, 0.0
        for segment in hypothesis.segments:
            words = segment["text"].split()
            # Only where the segments spell the decode's own words (a dropped repeat would shift them).
            if [_key(w) for w in words] != [_key(w) for w in hypothesis.words[counted:counted + len(words)]]:
                break
            counted += len(words)
            if counted > in_window or segment["end"] > window_seconds - CUT_MARGIN_SECONDS:
                break
            cut_words, cut_at = counted, segment["end"]
        if cut_words == 0 or cut_at <= 0:
            return
        mine = self.confirmed[self.before_window:self.before_window + cut_words]
        if [_key(w) for w in hypothesis.words[:cut_words]] != [_key(w) for w in mine]:
            return  # the latest decode hears those words otherwise: not a place to cut
        self.window_start += int(cut_at * SAMPLE_RATE) * 2
        # The words keep the latest decode's case and punctuation (the same words: they agree on them).
        self.confirmed[self.before_window:self.before_window + cut_words] = hypothesis.words[:cut_words]
        self.before_window += cut_words
        self.previous = Hypothesis(words=hypothesis.words[cut_words:], segments=[], end=hypothesis.end)

    # ---------------------------------------------------------------- what to show

    def _shown(self) -> list[str]:
        """Confirmed words, then the latest decode's unconfirmed tail; the confirmed words of the window as
        that decode writes them (a sentence's end moves its full stop) when it agrees with them."""
        ahead = self.confirmed[: self.before_window]
        mine = self.confirmed[self.before_window:]
        words = self.previous.words if self.previous else []
        if [_key(w) for w in words[: len(mine)]] == [_key(w) for w in mine]:
            return ahead + words
        return self.confirmed + words[len(mine):]

    def text(self) -> str:
        return " ".join(self._shown())

    def confirmed_text(self) -> str:
        return " ".join(self._shown()[: len(self.confirmed)])

    def final(self, window_text: str) -> str:
        """The utterance's transcript from a decode of the whole final window."""
        return " ".join([*self.confirmed[: self.before_window], *window_text.split()])
