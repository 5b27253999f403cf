"""Find multi-head latent attention (DeepSeek V2/V3 and their descendants) in an attention module.

Its q comes from one projection (`q_proj`, or the low-rank `q_a_proj` -> `q_a_layernorm` ->
`q_b_proj`); its keys and values from `kv_a_proj_with_mqa` (a latent plus one rotated key part
shared by every head) -> `kv_a_layernorm` -> `kv_b_proj` (per head: the key part without
position, then the value). The module names and the attributes holding the widths are data.
"""

from __future__ import annotations

import torch
from torch import nn

from ._attn_probe import attention_record
from ._names import Q_AND_GATE
from ._spec import LatentKV

#: the module whose output is q, in order of preference (the low-rank chain ends in q_b_proj;
#: a projection that also holds the output gate's input, `_names.Q_AND_GATE`, last)
Q = ("q_b_proj", "q_proj", *Q_AND_GATE)
#: (latent plus shared rotated key part, expansion of the latent to per-head keys and values)
KV = ("kv_a_proj_with_mqa", "kv_b_proj")
#: attention attributes holding (nope, rope, v, rank) widths
WIDTHS = ("qk_nope_head_dim", "qk_rope_head_dim", "v_head_dim", "kv_lora_rank")
#: a norm of the shared rotated key part, before the rotation
ROPE_K_NORM = ("k_rope_only_layernorm",)


def latent_kv(model: nn.Module, attn_mod: nn.Module, attn: str) -> LatentKV | None:
    """The latent-attention description of `attn_mod` (block 0's, at path `attn` in a block),
    or None. Whether the rotation returns halves is read from one forward of 3 tokens."""
    q = next((n for n in Q if isinstance(getattr(attn_mod, n, None), nn.Module)), None)
    if q is None or not all(isinstance(getattr(attn_mod, n, None), nn.Module) for n in KV):
        return None
    widths = [getattr(attn_mod, n, None) for n in WIDTHS]
    if not all(isinstance(w, int) and w > 0 for w in widths):
        return None
    nope, rope, v, rank = (int(w) for w in widths)  # type: ignore[arg-type]
    heads = int(getattr(attn_mod, "num_heads", 0) or 0)
    q_out = getattr(getattr(attn_mod, q), "out_features", None)
    q_gate = 0
    if q in Q_AND_GATE:  # per head: the queries, then the gate's input
        if not heads or not isinstance(q_out, int) or q_out % heads:
            return None
        q_gate = q_out // heads - (nope + rope)
    return LatentKV(
        q=f"{attn}.{q}",
        kv_a=f"{attn}.{KV[0]}",
        kv_b=f"{attn}.{KV[1]}",
        nope=nope,
        rope=rope,
        v=v,
        rank=rank,
        interleaved=_returns_halves(model, attn_mod, q, nope, rope, q_gate),
        q_gate=q_gate,
        rope_k_norm=next(
            (
                f"{attn}.{n}"
                for n in ROPE_K_NORM
                if isinstance(getattr(attn_mod, n, None), nn.Module)
            ),
            None,
        ),
    )


def _returns_halves(
    model: nn.Module, attn_mod: nn.Module, q: str, nope: int, rope: int, gate: int = 0
) -> bool:
    """Whether the query attention receives holds the rotated part as two halves of q's
    adjacent pairs (DeepSeek V3's `rope_interleave`): at position 0 the rotation is the
    identity, so the query at position 0 is the output of q's projection (child `q`),
    reordered or not."""
    seen = attention_record(model, attn_mod)
    if "query" not in seen or q not in seen["outputs"]:
        return False
    heads = seen["outputs"][q][0, 0].reshape(-1, nope + rope + gate)  # position 0
    q_rope = heads[:, nope : nope + rope].float()
    query = seen["query"][0, :, 0, nope:].float()  # (heads, rope)
    halves = torch.cat([q_rope[..., 0::2], q_rope[..., 1::2]], dim=-1)
    return bool((halves - query).abs().max() < (q_rope - query).abs().max())
