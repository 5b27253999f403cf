"""CTRL: pre-LN blocks of GPT-2's shape under their own names, a token
embedding scaled by sqrt(d_model) in the model's forward, and fixed sinusoidal positions that
the model adds from a table (a buffer) with no module of their own.

`hook_embed` includes the factor (`embed_scale_sqrt`), and `hook_pos_embed` is served from the
table's rows (`pos_table`, `_engine/pos_table.py`), so their sum is the stream entering block 0.
Its attention calls transformers' attention interface with q, k, v from `Wq`, `Wk`, `Wv`.
"""

from ._spec import ArchSpec

_ATTN = "multi_head_attention"

SPEC = ArchSpec(
    family="ctrl",
    hf_classes=("CTRLLMHeadModel",),
    embed="transformer.w",
    blocks="transformer.h",
    final_norm="transformer.layernorm",
    unembed="lm_head",
    ln1="layernorm1",
    attn=_ATTN,
    attn_out=_ATTN,
    ln2="layernorm2",
    mlp_in="ffn.0",
    mlp_down="ffn.2",
    mlp_out="ffn",
    qkv=(f"{_ATTN}.Wq", f"{_ATTN}.Wk", f"{_ATTN}.Wv"),
    o_proj=f"{_ATTN}.dense",
    norm="layernorm",
    positional="learned",
    pos_table=("transformer.pos_encoding", "transformer.dropout"),
    embed_scale_sqrt="n_embd",
)
