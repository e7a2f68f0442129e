"""deploy/capacity.py, the sizing model behind docs/capacity.md: Erlang C against hand-worked values, and the
model reading bench_voice's JSON line (its measured STT busy time drives the speech-to-text pool)."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "deploy" / "capacity.py"


def _capacity():
    spec = importlib.util.spec_from_file_location("capacity", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_erlang_c_matches_hand_worked_values():
    capacity = _capacity()
    assert capacity.erlang_c(1, 0.5) == pytest.approx(0.5)  # M/M/1: P(wait) is the utilisation
    assert capacity.erlang_c(2, 1.0) == pytest.approx(1 / 3)  # B(2,1) = 0.2, C = 2·0.2 / (2 − 1·0.8)
    assert capacity.erlang_c(3, 3.0) == 1.0  # at or over capacity every arrival waits


def _run(tmp_path: Path, voice: dict) -> str:
    path = tmp_path / "voice.json"
    path.write_text("some table first\n" + json.dumps(voice) + "\n")
    return subprocess.run([sys.executable, str(SCRIPT), "--voice", str(path), "--users", "1000"],
                          capture_output=True, text=True, check=True).stdout


def _stt_servers(output: str) -> int:
    row = next(line for line in output.splitlines() if line.startswith("| speech to text"))
    return int(row.split("|")[4].strip().replace(",", ""))


def test_the_speech_to_text_pool_follows_the_measured_busy_time(tmp_path):
    light = _run(tmp_path, {"bench": "voice", "stt_busy_per_speech_s": 0.2, "voice_first_audio_ms_p99": 700})
    heavy = _run(tmp_path, {"bench": "voice", "stt_busy_per_speech_s": 0.8, "voice_first_audio_ms_p99": 700})

    assert "| speech to text | 600 ms |" in light and "| speech to text | 2,400 ms |" in heavy  # × 3 s of speech
    assert _stt_servers(heavy) > 3 * _stt_servers(light)
    assert "headroom at p99: 1300 ms" in light
