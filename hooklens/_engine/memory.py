"""Keep the heap memory a call freed for the next call (glibc's malloc only).

Caching keeps the tensors a forward would have freed, so the allocator cannot reuse them within
the call: a cache of every point takes fresh heap pages for all of them. When the cache is
dropped, glibc gives the top of its heap back to the system once that exceeds its trim
threshold, which starts at 128 KiB and rises only to twice the largest mmapped block freed so
far (64 MiB at most); the next call then faults every page in again. On CPU that was about 2%
of a `run_with_cache` of every point at 6 tokens (the logits set the threshold near 2 MiB, the
cache holds 4 MB), a fifth at 128 tokens, and a few % of a plain forward at 512 tokens.
glibc's rule already keeps memory it expects to need again; this extends it to what hooklens
hands back: after a CPU forward or `run_with_cache`, the trim threshold becomes glibc's own
ceiling (64 MiB, with the mmap threshold at its ceiling of 32 MiB) or twice the bytes of the
largest result so far (logits plus cache), whichever is larger. The heap never grows past the
peak the calls themselves reached; `release_freed_memory()` hands the freed part back.
"""

from __future__ import annotations

import ctypes
import os
import platform
from collections.abc import Iterable
from functools import cache

import torch

_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
# glibc's own dynamic ceilings (64-bit): the mmap threshold rises to at most 32 MiB, the trim
# threshold to twice that; never set lower, so no other code in the process trims more often.
_MMAP_THRESHOLD_MAX = 32 * 2**20
_GLIBC_TRIM_MAX = 2 * _MMAP_THRESHOLD_MAX
_USER_TUNING_VARS = (
    "MALLOC_TRIM_THRESHOLD_",
    "MALLOC_MMAP_THRESHOLD_",
    "MALLOC_TOP_PAD_",
    "MALLOC_MMAP_MAX_",
)

_trim_threshold_set = 0


@cache
def _glibc() -> ctypes.CDLL | None:
    """glibc, when this process runs on it."""
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return None
    try:
        return ctypes.CDLL("libc.so.6")
    except OSError:
        return None


@cache
def _libc() -> ctypes.CDLL | None:
    """glibc, unless someone asked hooklens to leave malloc alone (or tunes it already)."""
    if os.environ.get("HOOKLENS_KEEP_FREED_MEMORY", "1") == "0":
        return None
    if any(v in os.environ for v in _USER_TUNING_VARS):
        return None
    if "glibc.malloc." in os.environ.get("GLIBC_TUNABLES", ""):
        return None
    return _glibc()


def cpu_bytes(tensors: Iterable[torch.Tensor]) -> int:
    """Bytes of the distinct CPU storages behind `tensors` (a storage shared by views once)."""
    seen: dict[int, int] = {}
    for t in tensors:
        if t.device.type == "cpu":
            storage = t.untyped_storage()
            seen[storage.data_ptr()] = storage.nbytes()
    return sum(seen.values())


def wanted_trim_threshold(kept_bytes: int, current: int) -> int:
    """The trim threshold that keeps `kept_bytes` of freed memory for the next call, or
    `current` when that already does (0: not set, nothing kept on CPU)."""
    if kept_bytes <= 0:
        return current
    return max(current, _GLIBC_TRIM_MAX, 2 * kept_bytes)


def keep_for_next_call(kept_bytes: int) -> bool:
    """Raise glibc's trim threshold so a result of `kept_bytes` (CPU) stays with the process
    when dropped. True when the threshold changed."""
    global _trim_threshold_set
    wanted = wanted_trim_threshold(kept_bytes, _trim_threshold_set)
    libc = _libc()
    if wanted == _trim_threshold_set or libc is None:
        return False
    # Setting one threshold freezes both; pin the mmap one where glibc's rule would take it.
    if not libc.mallopt(_M_MMAP_THRESHOLD, _MMAP_THRESHOLD_MAX):
        return False
    if not libc.mallopt(_M_TRIM_THRESHOLD, ctypes.c_int(min(wanted, 2**31 - 1))):
        return False
    _trim_threshold_set = wanted
    return True


def release_freed_memory() -> bool:
    """Give the memory of dropped results that the process kept back to the operating system
    (glibc's `malloc_trim`). True when some was given back; False elsewhere."""
    libc = _glibc()
    return bool(libc is not None and libc.malloc_trim(0))
