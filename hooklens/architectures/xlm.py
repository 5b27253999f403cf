"""XLM (`xlm`): post-LN layers kept as parallel lists, learned positions, no final norm; its
attention module computes attention itself.

`XLMModel` holds each layer's parts in four lists (`attentions`, `layer_norm1`, `ffns`,
`layer_norm2`) and its forward runs entry i of each in turn: the stream plus attention's
output is normalized by `layer_norm1[i]`, that plus the MLP's output by `layer_norm2[i]`, then
multiplied by the padding mask. hooklens names each layer's parts through a view
(`_split_layers.py`); the layer's points are TransformerLens's BertBlock's, as for GPT-1. The
embeddings (tokens plus positions) are normalized by `layer_norm_emb` before layer 0, and the
last layer's output is the unembedding's input (`pred_layer.proj`).

Its attention forward is reimplemented below (`_forward`): q, k, v from `q_lin`/`k_lin`/
`v_lin`, the same key/value cache update, the model's mask (0 = masked; per key, or per query
and key when `causal`), scores scaled by 1/sqrt(d_head) and the softmax in float32, as its
code does; hooklens's attention function then serves q/k/v, scores, pattern and z. Its code
divides q by sqrt(d_head) before the product, the function scales the product: the logits
agree to float rounding (the registry test holds them to 1e-4).
"""

from __future__ import annotations

from typing import Any

import torch

from .._engine.attention import attention_forward
from .._engine.own_attention import additive_mask, split_heads
from ._spec import ArchSpec
from ._split_layers import LAYER_VIEWS


def _forward(
    self: Any,
    input: torch.Tensor,
    mask: torch.Tensor,
    kv: torch.Tensor | None = None,
    cache: Any = None,
    output_attentions: bool = False,
    **kwargs: Any,
) -> tuple[Any, ...]:
    """XLM's `MultiHeadAttention.forward` (self-attention: the causal LM passes no `kv`), with
    attention computed by hooklens's function. `input` (batch, pos, d_model); `mask` (batch,
    k_pos) or (batch, pos, k_pos), 0 where a key is masked."""
    if kv is not None:
        raise NotImplementedError(
            "hooklens's XLM attention serves self-attention only (the causal LM's); got kv="
        )
    from transformers import EncoderDecoderCache

    lins = (self.q_lin, self.k_lin, self.v_lin)
    q, k, v = (split_heads(lin(input), self.n_heads) for lin in lins)
    if cache is not None:  # the model's cache, updated as its own forward does
        own = cache.self_attention_cache if isinstance(cache, EncoderDecoderCache) else cache
        k, v = own.update(k, v, self.layer_id, kwargs=kwargs)
    batch, q_len, k_len = q.shape[0], q.shape[2], k.shape[2]
    rows = q_len if mask.dim() == 3 else 1
    attend = (mask != 0).view(batch, 1, rows, -1)
    scores_mask = additive_mask(attend, q_len, k_len, q.dtype, q.device)
    dropout = self.dropout if self.training else 0.0
    scaling = self.head_dim**-0.5
    z, weights = attention_forward(self, q, k, v, scores_mask, dropout=dropout, scaling=scaling)
    out = self.out_lin(z.reshape(batch, q_len, -1))
    return (out, weights) if output_attentions else (out,)


SPEC = ArchSpec(
    family="xlm",
    hf_classes=("XLMWithLMHeadModel",),
    embed="transformer.embeddings",
    pos_embed="transformer.position_embeddings",
    embed_sum_norm="transformer.layer_norm_emb",
    blocks=f"transformer.{LAYER_VIEWS}",
    layer_lists=(
        ("attention", "attentions"),
        ("ln1", "layer_norm1"),
        ("mlp", "ffns"),
        ("ln2", "layer_norm2"),
    ),
    final_norm=None,
    unembed="pred_layer.proj",
    ln1="ln1",
    attn="attention",
    attn_out="attention.out_lin",
    ln2="ln2",
    mlp_in="mlp.lin1",
    mlp_down="mlp.lin2",
    mlp_out="mlp",
    resid_mid_at="ln1",
    qkv=("attention.q_lin", "attention.k_lin", "attention.v_lin"),
    o_proj="attention.out_lin",
    norm="layernorm",
    positional="learned",
    post_ln=True,
    attn_forward=_forward,
    # the model masks ln2's output in place, and an edit of the next layer's hook_resid_pre
    # (attention's input, that tensor) is written into it
    edited_in_place=("ln2.hook_normalized", "hook_normalized_resid_post"),
    config_requirements=(
        ("asm", False, "an adaptive softmax head has no unembedding matrix"),
        ("is_encoder", True, "XLM's decoder is not implemented by transformers"),
    ),
)
