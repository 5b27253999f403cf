"""CodeGen: GPT-J's parallel block (one norm), partial rotary (rotate-every-two), LayerNorm; q, k
and v fused in `qkv_proj`, laid out per model-parallel shard (q, v, k of each of `mp_num`
shards). Its attention calls transformers' attention interface, but on rotated q and k.

Its forward is reimplemented below (`_forward`) so that `hook_q`/`hook_k` see q and k split from
`qkv_proj` before the rotation; the rest is its own computation. The weights of `qkv_proj` are
not described in TransformerLens's shapes (`qkv` is None): `W_Q` etc. and the per-head input
points are not available on CodeGen.
"""

from __future__ import annotations

from typing import Any

import torch

from .._engine.attention import attention_forward, fire_pre_rotary
from ._spec import ArchSpec


def _forward(
    self: Any,
    hidden_states: torch.Tensor,
    position_embeddings: tuple[torch.Tensor, torch.Tensor],
    attention_mask: torch.Tensor | None = None,
    cache: Any = None,
    **kwargs: Any,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """`CodeGenAttention.forward`, with q and k hooked before their rotation."""
    from transformers.models.codegen.modeling_codegen import apply_rotary_pos_emb

    lead = hidden_states.shape[:-1]
    local = self.embed_dim // self.mp_num
    qkv = self.qkv_proj(hidden_states).view(*lead, -1, 3 * local)
    query, value, key = (t.reshape(*lead, -1, self.head_dim) for t in qkv.split(local, dim=-1))
    query, key = fire_pre_rotary(self, query.transpose(1, 2), key.transpose(1, 2))
    query, key = query.transpose(1, 2), key.transpose(1, 2)  # (batch, pos, heads, d_head)
    sin, cos = position_embeddings
    dim = self.rotary_dim or self.head_dim
    query = torch.cat([apply_rotary_pos_emb(query[..., :dim], sin, cos), query[..., dim:]], -1)
    key = torch.cat([apply_rotary_pos_emb(key[..., :dim], sin, cos), key[..., dim:]], -1)
    value = value.transpose(1, 2)
    query, key = query.transpose(1, 2).to(value.dtype), key.transpose(1, 2).to(value.dtype)
    if cache is not None:
        key, value = cache.update(key, value, self.layer_idx, kwargs=kwargs)
    dropout = self.attention_dropout if self.training else 0.0
    z, weights = attention_forward(
        self, query, key, value, attention_mask, dropout=dropout, scaling=self.scaling,
        qk_read=True,
    )  # fmt: skip
    out = self.resid_dropout(self.out_proj(z.reshape(*lead, -1).contiguous()))
    return out, weights


SPEC = ArchSpec(
    family="codegen",
    hf_classes=("CodeGenForCausalLM",),
    embed="transformer.wte",
    blocks="transformer.h",
    final_norm="transformer.ln_f",
    unembed="lm_head",
    ln1="ln_1",
    attn="attn",
    attn_out="attn",
    ln2=None,  # the MLP reads ln_1's output
    mlp_in="mlp.fc_in",
    mlp_down="mlp.fc_out",
    mlp_out="mlp",
    o_proj="attn.out_proj",
    norm="layernorm",
    parallel_residual=True,
    attn_forward=_forward,
)
