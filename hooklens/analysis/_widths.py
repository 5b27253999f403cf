"""Why a model has no embedding or unembedding matrix in TransformerLens's shapes.

`W_E` is (d_vocab, d_model) with `W_E[tokens]` = `hook_embed`, `W_pos` (n_ctx, d_model) and
`W_U` (d_model, d_vocab) with `ln_final.hook_normalized @ W_U + b_U` = the logits. A model whose
embeddings are narrower than the stream and projected to it (`ArchSpec.embed_proj`: RemBERT,
ELECTRA's generators) adds positions and token types and normalizes the sum *before* the
projection, so `hook_embed` (the projection's output) is no row of any matrix (nor where the
projection mixes the token embedding with other per-token embeddings before positions are
added: RoCBert); a model whose LM
head maps the stream to another width before unembedding (RemBERT's `output_embedding_size`)
has an unembedding that never reads a d_model-wide tensor. Rather than hand back the narrower
tables, these weights raise, saying why and where the model's own tables are.
"""

from __future__ import annotations

from typing import Any

from .._engine.linear import in_out
from ..architectures._names import EMBED_POS

__all__ = ["why_missing"]

MSG_PROJECTED = """{family} has no {name}: its hook_embed is {proj}'s output (the stream entering
block 0), which projects the embeddings from width {width} to d_model {d_model} after {parent}
has summed and transformed them ({parts}). No {shape} matrix gives hook_embed. The model's own
tables are {width} wide: model.hf_model.get_submodule({table!r}).weight."""

MSG_MIXED = """{family} has no W_E: its hook_embed is {proj}'s output, which projects the token
embedding concatenated with the other per-token embeddings of {parent} ({parts}) to d_model,
before positions and token types are added. No (d_vocab, d_model) matrix gives hook_embed. The
token embedding's own table: model.hf_model.get_submodule({table!r}).weight."""

MSG_HEAD_WIDTH = """{family} has no W_U: its unembedding {unembed} reads the output of its LM head
{head} (width {width}), not the residual stream (d_model {d_model}), so no (d_model, d_vocab)
matrix unembeds the stream. Logits from a residual-stream tensor: model.unembed_resid(resid)
(it applies the whole head); the unembedding's own weight is
model.hf_model.get_submodule({unembed!r}).weight ({width} -> d_vocab)."""


def why_missing(model: Any, name: str) -> str | None:
    """Why `model` has no weight `name` ("W_E", "W_pos", "W_U") in TransformerLens's shape, or
    None where it has one."""
    spec, hf, d_model = model.spec, model.hf_model, model.cfg.d_model
    mixed = spec.embed_proj is not None and spec.pos_embed is not None  # before the sum
    if name == "W_E" and mixed:
        parent = spec.embed.rpartition(".")[0]
        parts = ", ".join(dict(hf.get_submodule(parent).named_children()))
        return MSG_MIXED.format(
            family=spec.family, proj=spec.embed_proj, parent=parent, parts=parts, table=spec.embed
        )
    if name in ("W_E", "W_pos") and spec.embed_proj is not None and not mixed:
        parent = spec.embed.rpartition(".")[0]
        children = dict(hf.get_submodule(parent).named_children())
        table = next((f"{parent}.{n}" for n in EMBED_POS if n in children), spec.embed)
        return MSG_PROJECTED.format(
            family=spec.family,
            name=name,
            proj=spec.embed_proj,
            width=hf.get_submodule(spec.embed).embedding_dim,
            d_model=d_model,
            parent=parent,
            parts=", ".join(children),
            shape="(d_vocab, d_model)" if name == "W_E" else "(n_ctx, d_model)",
            table=spec.embed if name == "W_E" else table,
        )
    if name == "W_U" and spec.head is not None:
        width = in_out(hf.get_submodule(spec.unembed)).shape[0]
        if width != d_model:
            return MSG_HEAD_WIDTH.format(
                family=spec.family, unembed=spec.unembed, head=spec.head, width=width,
                d_model=d_model,
            )  # fmt: skip
    return None
