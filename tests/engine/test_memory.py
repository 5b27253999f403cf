"""The heap memory of a dropped activation cache stays with the process for the next cache."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
from typing import Any

import pytest
import torch

from hooklens._engine import memory as _memory

glibc_only = pytest.mark.skipif(
    platform.system() != "Linux" or platform.libc_ver()[0] != "glibc",
    reason="the kept-memory policy tunes glibc's malloc; other C libraries are left alone",
)

# A GPT-2 whose cache of every point is ~140 MiB at 1024 tokens (mode "cache"), or whose logits
# are 64 MiB with a vocabulary of 16384 (mode "forward"): beyond what glibc's own rule keeps.
_CHILD = """
import json, resource, sys, tempfile
import torch, transformers as tf
import hooklens as hl
from hooklens._engine import memory as _memory
torch.manual_seed(0)
mode, vocab = sys.argv[1], int(sys.argv[2])
config = tf.GPT2Config(vocab_size=vocab, n_positions=1024, n_embd=64, n_layer=4, n_head=4)
with tempfile.TemporaryDirectory() as folder:
    tf.AutoModelForCausalLM.from_config(config).save_pretrained(folder)
    model = hl.HookedModel.from_pretrained(folder)
tokens = torch.randint(0, vocab, (1, 1024))
faults = []
with torch.inference_mode():
    for _ in range(5):
        before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        logits, cache = model.run_with_cache(tokens) if mode == "cache" else (model(tokens), {})
        faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
        kept = _memory.cpu_bytes([logits, *cache.values()])
        del logits, cache
# Probe glibc's trim threshold: free 96 MiB of fresh blocks at the heap's top; a threshold
# under that gives them back at once (the heap shrinks), one above it keeps them.
import ctypes
class MallInfo2(ctypes.Structure):
    _fields_ = [(n, ctypes.c_size_t) for n in "arena ordblks smblks hblks hblkhd usmblks "
                "fsmblks uordblks fordblks keepcost".split()]
libc = ctypes.CDLL("libc.so.6")
libc.mallinfo2.restype = MallInfo2
libc.malloc.restype = ctypes.c_void_p
libc.free.argtypes = [ctypes.c_void_p]
fillers = []  # first use up the heap's free memory, so the probe's blocks sit at its top
heap = libc.mallinfo2().arena
while libc.mallinfo2().arena == heap and len(fillers) < 4096:
    fillers.append(libc.malloc(2**20))
blocks = [libc.malloc(2**20) for _ in range(96)]
heap_full = libc.mallinfo2().arena
for b in reversed(blocks):
    libc.free(b)
heap_shrink = heap_full - libc.mallinfo2().arena
for b in fillers:
    libc.free(b)
rss = lambda: int(open("/proc/self/statm").read().split()[1]) * 4096
rss_kept = rss()
released = hl.release_freed_memory()
print(json.dumps({"faults": faults, "kept_bytes": kept, "released": released,
                  "heap_shrink": heap_shrink, "rss_drop": rss_kept - rss()}))
"""


def _child(mode: str = "cache", vocab: int = 256, **env: str) -> dict[str, Any]:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_")}
    environ.pop("GLIBC_TUNABLES", None)
    proc = subprocess.run(
        [sys.executable, "-c", _CHILD, mode, str(vocab)],
        env={**environ, "OMP_NUM_THREADS": "1", **env},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


@glibc_only
def test_repeat_cache_reuses_the_memory_of_the_dropped_one() -> None:
    out = _child()
    faults, kept = out["faults"], out["kept_bytes"]
    pages = kept // 4096
    assert kept > 64 * 2**20, "the model must cache more than glibc keeps on its own"
    # The first caches fault their pages in (the first one mmaps its big blocks; from the
    # second on they come from the heap); later ones reuse them (but for the odd block).
    assert faults[0] > pages / 2, faults
    assert max(faults[3:]) < pages / 4, (faults, pages)
    assert out["heap_shrink"] == 0, out
    # ...until the user asks for the memory to go back to the system.
    assert out["released"] is True
    assert out["rss_drop"] > kept / 2, out


@glibc_only
def test_big_logits_keep_the_forwards_memory_too() -> None:
    out = _child("forward", vocab=16384)
    assert out["kept_bytes"] == 64 * 2**20
    assert out["heap_shrink"] == 0, out


@glibc_only
def test_opt_out_leaves_glibc_alone() -> None:
    out = _child(HOOKLENS_KEEP_FREED_MEMORY="0")
    # glibc's own rule: whether a dropped cache's pages stay depends on the heap's layout, but
    # freed blocks at the top beyond 64 MiB are always given back.
    assert out["heap_shrink"] > 0, out


def test_trim_threshold_starts_at_glibcs_ceiling_and_never_falls() -> None:
    mib = 2**20
    assert _memory.wanted_trim_threshold(0, 0) == 0  # nothing on CPU: glibc left alone
    assert _memory.wanted_trim_threshold(4 * mib, 0) == 64 * mib  # glibc's own ceiling
    assert _memory.wanted_trim_threshold(100 * mib, 0) == 200 * mib
    assert _memory.wanted_trim_threshold(50 * mib, 200 * mib) == 200 * mib  # never lowered
    assert _memory.wanted_trim_threshold(300 * mib, 200 * mib) == 600 * mib


def test_cpu_bytes_counts_each_storage_once() -> None:
    qkv = torch.zeros(4, 12)
    q, k, v = qkv.split(4, dim=-1)
    other = torch.zeros(10)
    assert _memory.cpu_bytes([q, k, v, other, other]) == qkv.nbytes + other.nbytes
    if torch.cuda.is_available():
        assert _memory.cpu_bytes([qkv.cuda()]) == 0
