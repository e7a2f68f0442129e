"""Where models run: `auto` picks CUDA when a GPU is present, else the CPU."""

from __future__ import annotations

import logging
import os
from functools import cache

logger = logging.getLogger(__name__)


@cache
def cuda_available() -> bool:
    try:
        import ctranslate2

        if ctranslate2.get_cuda_device_count() > 0:
            return True
    except Exception:
        logger.debug("ctranslate2 sees no CUDA", exc_info=True)
    try:
        import torch

        return bool(torch.cuda.is_available())
    except Exception:  # noqa: BLE001
        return False


def device_resolve(device: str = "auto") -> str:
    if device == "auto":
        return "cuda" if cuda_available() else "cpu"
    return device


def cpu_threads() -> int:
    """Threads for one model's math; the gpu worker is one process, so use the cores we have."""
    return int(os.environ.get("PARLEY_CPU_THREADS") or os.cpu_count() or 1)
