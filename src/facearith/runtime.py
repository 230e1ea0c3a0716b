"""Process-level speed settings that the stages and the benchmarks share (measured in benchmarks/README.md)."""

from __future__ import annotations

import ctypes
import ctypes.util
import sys

import torch

# glibc's mallopt parameters (malloc.h)
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
KEEP_BYTES = 1 << 30


def tune_allocator(keep_bytes: int = KEEP_BYTES) -> bool:
    """Keep large freed blocks in the heap instead of returning them to the kernel; True when applied.

    torch's CPU allocator does not cache. glibc serves every block above its mmap threshold (at most 32 MiB)
    with a fresh mmap, whose pages the kernel zero-fills on first touch, and unmaps it on free. MobileNetV2's
    first feature maps for 16 images pass 32 MiB between 224 and 256 px, so every step then pays page faults:
    that is the 256 px cliff on the CPU (about 5 against 18 images/s). Raising both thresholds ends it.
    Process-wide and harmless elsewhere; a no-op where the C library is not glibc (macOS, musl).
    """
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    return bool(mallopt(_M_MMAP_THRESHOLD, keep_bytes)) and bool(mallopt(_M_TRIM_THRESHOLD, keep_bytes))


def channels_last(x: torch.Tensor) -> torch.Tensor:
    """NHWC layout: oneDNN's depthwise convolutions and cuDNN's tensor cores both run faster on it."""
    return x.contiguous(memory_format=torch.channels_last)
