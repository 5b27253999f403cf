"""Find multi-head latent attention (DeepSeek V2/V3 and their descendants) in an attention module.

Its q comes from one projection (`q_proj`, or the low-rank `q_a_proj` -> `q_a_layernorm` ->
`q_b_proj`); its keys and values from `kv_a_proj_with_mqa` (a latent plus one rotated key part
shared by every head) -> `kv_a_layernorm` -> `kv_b_proj` (per head: the key part without
position, then the value). The module names and the attributes holding the widths are data.
"""

from __future__ import annotations

from typing import Any

from torch import nn

from ._spec import LatentKV

#: the module whose output is q, in order of preference (the low-rank chain ends in q_b_proj)
Q = ("q_b_proj", "q_proj")
#: (latent plus shared rotated key part, expansion of the latent to per-head keys and values)
KV = ("kv_a_proj_with_mqa", "kv_b_proj")
#: attention attributes holding (nope, rope, v, rank) widths
WIDTHS = ("qk_nope_head_dim", "qk_rope_head_dim", "v_head_dim", "kv_lora_rank")
#: config attribute: the rotation takes adjacent pairs and returns two halves
INTERLEAVE = "rope_interleave"


def latent_kv(attn_mod: nn.Module, attn: str, text: Any) -> LatentKV | None:
    """The latent-attention description of `attn_mod` (at path `attn` in a block), or None."""
    q = next((n for n in Q if isinstance(getattr(attn_mod, n, None), nn.Module)), None)
    if q is None or not all(isinstance(getattr(attn_mod, n, None), nn.Module) for n in KV):
        return None
    widths = [getattr(attn_mod, n, None) for n in WIDTHS]
    if not all(isinstance(w, int) and w > 0 for w in widths):
        return None
    nope, rope, v, rank = (int(w) for w in widths)  # type: ignore[arg-type]
    return LatentKV(
        q=f"{attn}.{q}",
        kv_a=f"{attn}.{KV[0]}",
        kv_b=f"{attn}.{KV[1]}",
        nope=nope,
        rope=rope,
        v=v,
        rank=rank,
        interleaved=bool(getattr(text, INTERLEAVE, False)),
    )
