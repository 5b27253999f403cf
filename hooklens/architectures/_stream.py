"""What a model does to the residual stream outside its blocks' parts, read as data.

A factor on the token embedding held by the model rather than the embedding module
(RecurrentGemma's `normalizer`, Marian's `embed_scale`), a norm of the embedding that the first
block applies before anything else (RWKV's `pre_ln`) or the model before the blocks with its
final norm (NanoChat), and a halving of the stream between
blocks at inference (RWKV's `rescale_every`), or a block whose residual is the normalized
stream (MiniMax), scaled at each addition (Beam) or moved towards each part's output rather than
added to (Dory), which the residual points cannot describe.
"""

from __future__ import annotations

from typing import Any

from torch import nn

from ._names import (
    AFFINE_RESIDUAL,
    ATTENTION_RESIDUALS,
    DEPTH_SCALED_RESIDUAL,
    EMBED_NORM_IN_BLOCK,
    EMBED_SCALE,
    EMBED_SCALE_ATTR,
    GATED_RESIDUAL,
    INTERPOLATED_RESIDUAL,
    LOGIT_SCALES,
    LOGIT_SOFTCAPS,
    LOGITS_VOCAB,
    NORMED_RESIDUAL,
    PROMPT_PREFIX,
    STREAM_HALVING,
)
from ._run_order import final_norm_on_embed

__all__ = [
    "embed_norm_in_block", "normed_residual", "scale_owner", "stream_ends",
    "stream_rescaled",
]  # fmt: skip


def own_attr(config: Any, names: tuple[str, ...]) -> str | None:
    """The first of `names` that `config` holds itself, not as an alias of another attribute
    (Inkling's `embedding_multiplier` is its logits' divisor under another name)."""
    aliases = getattr(config, "attribute_map", None) or {}
    return next((a for a in names if hasattr(config, a) and a not in aliases), None)


def stream_ends(model: nn.Module, text: Any, embed: str, blocks: str, final: str) -> dict[str, Any]:
    """The adapter fields of what `model` does to the stream before its first block and after
    the final norm (model paths `embed`, `blocks`, `final`; `text` its text config): the
    embedding's factor (a config attribute, or the module holding it) and norm, the logits'
    factor and soft-cap."""
    parent_path = blocks.rpartition(".")[0]
    parent = model.get_submodule(parent_path) if parent_path else model
    return {
        "final_logit_softcap": next((a for a in LOGIT_SOFTCAPS if getattr(text, a, None)), None),
        "logits_vocab": next((a for a in LOGITS_VOCAB if getattr(text, a, None)), None),
        "logit_scale": next(
            ((a, op) for a, op in LOGIT_SCALES if getattr(text, a, None) not in (None, 1)), None
        ),
        "embed_scale": own_attr(text, EMBED_SCALE),
        "embed_scale_at": scale_owner(model, embed, parent, parent_path),
        "embed_sum_norm": embed_norm_in_block(model, blocks, final),
    }


MSG_HALVED = (
    "it halves the residual stream between blocks every {every} layers at inference "
    "(config.{attr}={every}), so a block's hook_resid_post would not be the next block's "
    "hook_resid_pre. The halving only guards half precision against overflow; load the model "
    "with {attr}=0 to wrap it: HookedModel.from_pretrained(name, {attr}=0) (a keyword "
    "transformers sets on its config)"
)

MSG_ATTENTION_RESIDUALS = (
    "its layers read the stream through a learned attention over the outputs of all earlier "
    "blocks of layers (attention residuals, config {attr}={every}): what a layer reads is a "
    "mix it computes from those outputs, not one tensor carried from the layer before, so "
    "hook_resid_pre would not be what the layer reads"
)

MSG_PROMPT = (
    "it prepends {count} learned prompt tokens (config.{attr}={count}) to every input inside "
    "its forward and drops them after its last block, so its blocks' streams, keys and "
    "attention patterns have {count} more positions than the tokens given (the points are "
    "declared over the input's positions, and patching and the per-position views index them "
    "so); it also treats token id 0 as padding (its mask and segment embedding read the ids)"
)

MSG_NORMED = (
    "its blocks keep the normalized stream as their residual, times a factor ({attr}: "
    "alpha * ln1(x) + beta * attn(ln1(x)), then the same around the MLP), so no module's "
    "output is what attention or the MLP adds to the stream, and hook_resid_pre + "
    "hook_attn_out + hook_mlp_out = hook_resid_post would not hold"
)

MSG_GATED = (
    "its blocks mix each part's output into the stream with learned per-channel gates ({attrs}: "
    "a * part + b * x), so the stream a block receives is rescaled as it is carried through "
    "and hook_resid_pre + hook_attn_out + hook_mlp_out = hook_resid_post would not hold"
)

MSG_AFFINE = (
    "its blocks shift and scale each part's output and the stream by learned per-channel "
    "parameters before adding them ({attrs}: (part + c) * a + (x + d) * b), so "
    "hook_resid_pre + hook_attn_out + hook_mlp_out = hook_resid_post would not hold"
)

MSG_INTERPOLATED = (
    "its blocks do not add their parts to the stream: each moves the normalized stream towards "
    "a part's normalized output at a learned per-channel rate ({attrs}: x + r * (part - x), "
    "x on the unit sphere, as in nGPT), so the stream a block receives is not carried through "
    "and hook_resid_pre + hook_attn_out + hook_mlp_out = hook_resid_post would not hold"
)

MSG_DEPTH_SCALED = (
    "its blocks scale the residual stream itself at each addition ({attrs}: the k-th addition "
    "computes stream * sqrt((k - 1) / k) + part / sqrt(k); its first addition keeps "
    "{kept} of the block's input), so hook_resid_pre + hook_attn_out + hook_mlp_out = "
    "hook_resid_post would not hold for any reading of hook_attn_out/hook_mlp_out: the stream "
    "a block receives is not carried through unchanged"
)


def scale_owner(model: nn.Module, embed: str, parent: nn.Module, path: str) -> str | None:
    """The model path of the module multiplying the token embedding outside the embedding
    module (RecurrentGemma's `normalizer`), or None (the embedding scales itself, or nothing)."""
    on_embed = any(hasattr(model.get_submodule(embed), a) for a in EMBED_SCALE_ATTR)
    return path if not on_embed and any(hasattr(parent, a) for a in EMBED_SCALE_ATTR) else None


def embed_norm_in_block(model: nn.Module, blocks: str, final: str) -> str | None:
    """The model path of a norm applied to the embedding before block 0's parts: one block 0
    holds (RWKV's `pre_ln`), or the final norm, which the model also calls before the blocks
    (NanoChat); or None."""
    first = model.get_submodule(blocks)[0]  # type: ignore[index]
    name = next(
        (n for n in EMBED_NORM_IN_BLOCK if isinstance(getattr(first, n, None), nn.Module)), None
    )
    return f"{blocks}.0.{name}" if name is not None else final_norm_on_embed(model, final, blocks)


def stream_rescaled(text: Any, n_layers: int) -> str | None:
    """Why the model cannot be wrapped when it halves its stream between blocks, or when its
    blocks' stream holds positions the input has not (prompt tokens it prepends), or when its
    layers read a learned mix of earlier blocks' outputs (attention residuals), or None."""
    for attr in PROMPT_PREFIX:
        count = getattr(text, attr, None)
        if isinstance(count, int) and count > 0:
            return MSG_PROMPT.format(count=count, attr=attr)
    for attr in ATTENTION_RESIDUALS:
        every = getattr(text, attr, None)
        if isinstance(every, int) and every > 0:
            return MSG_ATTENTION_RESIDUALS.format(attr=attr, every=every)
    for attr in STREAM_HALVING:
        every = getattr(text, attr, None)
        if isinstance(every, int) and 0 < every <= n_layers:
            return MSG_HALVED.format(every=every, attr=attr)
    return None


def normed_residual(block: nn.Module) -> str | None:
    """Why a block's output is not its input plus its parts' outputs (`ArchSpec.unsummed`) when
    its residual is the normalized stream (a factor attribute of `NORMED_RESIDUAL` on the
    block) or a scaled stream (an addition index of `DEPTH_SCALED_RESIDUAL`, Beam's) or an
    interpolation towards each part (learned rates of `INTERPOLATED_RESIDUAL`, Dory's) or a
    gated mix of each part and the stream (modules of `GATED_RESIDUAL`, Ergo's) or an affine
    map of each (modules of `AFFINE_RESIDUAL`, ZAYA's), or None."""
    attr = next((a for a in NORMED_RESIDUAL if hasattr(block, a)), None)
    if attr is not None:
        return MSG_NORMED.format(attr=attr)
    rates = [a for a in INTERPOLATED_RESIDUAL if isinstance(getattr(block, a, None), nn.Parameter)]
    if rates:
        return MSG_INTERPOLATED.format(attrs=", ".join(rates))
    gates = [a for a in GATED_RESIDUAL if isinstance(getattr(block, a, None), nn.Module)]
    if gates:
        return MSG_GATED.format(attrs=", ".join(gates))
    affine = [a for a in AFFINE_RESIDUAL if isinstance(getattr(block, a, None), nn.Module)]
    if affine:
        return MSG_AFFINE.format(attrs=", ".join(affine))
    depth = {a: getattr(block, a) for a in DEPTH_SCALED_RESIDUAL if hasattr(block, a)}
    if not depth:
        return None
    k = min((v for v in depth.values() if isinstance(v, int) and v > 0), default=1)
    return MSG_DEPTH_SCALED.format(
        attrs=", ".join(f"{a}={v}" for a, v in depth.items()), kept=f"{((k - 1) / k) ** 0.5:.3g}"
    )
