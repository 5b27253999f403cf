"""TransformerLens's activation-patching functions, by name and argument order, batched.

``get_act_patch_resid_pre(model, corrupted_tokens, clean_cache, patching_metric)`` and its
siblings mean what they mean in ``transformer_lens.patching``: each cell's clean activation is
patched into the corrupted run of *every* prompt of the batch at once, and the result is the
metric's raw value, one number per cell (``patching_metric(logits (batch, pos, d_vocab))``
returns one number for the batch, e.g. an averaged logit difference). The cells run as batch
elements of few forward passes from the lowest patched layer and position on (see
``hooklens.patching``), not one forward pass each.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from typing import Any

import torch

from .._engine.kwargs import checked
from ._evaluate import CellMetric
from ._inputs import prompt_batch
from ._plan import _Cell
from ._run import Patcher
from ._sweep import run_cells
from ._types import Patch

PatchingMetric = Callable[[torch.Tensor], Any]

_NOT_A_CACHE = (
    "{fn}(model, corrupted_tokens, clean_cache, patching_metric) is TransformerLens's order, and "
    "`clean_cache` must be the ActivationCache of the clean run "
    "(`_, clean_cache = model.run_with_cache(clean_tokens)`), got {kind}. hooklens's own "
    "hl.patching.sweep(model, clean, corrupted, metric) takes the two prompts instead."
)

#: TransformerLens's activation name -> hooklens hook suffix.
_HOOKS = {
    "resid_pre": "hook_resid_pre",
    "resid_mid": "hook_resid_mid",
    "attn_out": "hook_attn_out",
    "mlp_out": "hook_mlp_out",
    "z": "attn.hook_z",
    "q": "attn.hook_q",
    "k": "attn.hook_k",
    "v": "attn.hook_v",
    "pattern": "attn.hook_pattern",
}


def _patch(activation: str, layer: int, index: dict[str, int]) -> Patch:
    name = f"blocks.{layer}.{_HOOKS[activation]}"
    pos = index.get("pos", index.get("dest_pos"))
    return Patch(name, pos=pos, head=index.get("head"), src_pos=index.get("src_pos"))


def _activation_patch(
    fn_name: str, activation: str, axes: tuple[str, ...]
) -> Callable[..., torch.Tensor]:
    """A TransformerLens-style patching function over ``axes`` (the first is always layer)."""

    def run(
        model: Any,
        corrupted_tokens: Any,
        clean_cache: Any,
        patching_metric: PatchingMetric,
    ) -> torch.Tensor:
        if type(clean_cache).__name__ != "ActivationCache":
            raise TypeError(_NOT_A_CACHE.format(fn=fn_name, kind=type(clean_cache).__name__))
        tokens = prompt_batch(model, corrupted_tokens)
        n_heads = model.cfg.n_kv_heads if activation in ("k", "v") else model.cfg.n_heads
        sizes = {"layer": model.cfg.n_layers, "pos": tokens.shape[1], "head": n_heads}
        sizes["dest_pos"] = sizes["src_pos"] = sizes["pos"]
        for layer in range(model.cfg.n_layers):
            model._point(f"blocks.{layer}.{_HOOKS[activation]}")  # explains a missing point
        patcher = Patcher(model, tokens, clean_cache)
        cells = []
        for index in itertools.product(*(range(sizes[a]) for a in axes)):
            where = dict(zip(axes, index, strict=True))
            patch = _patch(activation, where["layer"], where)
            cells.append(_Cell(index, where["layer"], patch, patch.pos or 0))
        raw = torch.zeros([sizes[a] for a in axes])
        run_cells(patcher, cells, CellMetric(patcher, patching_metric, per_batch=True), raw)
        return raw.to(model.cfg.device)

    run.__name__ = run.__qualname__ = fn_name
    run = checked()(run)
    shape = ", ".join("n_" + a + "s" if a in ("layer", "head") else a for a in axes)
    run.__doc__ = (
        f"TransformerLens's ``{fn_name}``: patch the clean ``{activation}`` into the corrupted "
        f"run at every ({', '.join(axes)}) and return the metric of each patch, shape "
        f"[{shape}]. ``corrupted_tokens`` (batch, pos); ``clean_cache`` from "
        "``model.run_with_cache(clean_tokens)`` (same batch); ``patching_metric(logits (batch, "
        "pos, d_vocab))`` returns one number."
    )
    return run


get_act_patch_resid_pre = _activation_patch(
    "get_act_patch_resid_pre", "resid_pre", ("layer", "pos")
)
get_act_patch_resid_mid = _activation_patch(
    "get_act_patch_resid_mid", "resid_mid", ("layer", "pos")
)
get_act_patch_attn_out = _activation_patch("get_act_patch_attn_out", "attn_out", ("layer", "pos"))
get_act_patch_mlp_out = _activation_patch("get_act_patch_mlp_out", "mlp_out", ("layer", "pos"))
get_act_patch_attn_head_out_all_pos = _activation_patch(
    "get_act_patch_attn_head_out_all_pos", "z", ("layer", "head")
)
get_act_patch_attn_head_q_all_pos = _activation_patch(
    "get_act_patch_attn_head_q_all_pos", "q", ("layer", "head")
)
get_act_patch_attn_head_k_all_pos = _activation_patch(
    "get_act_patch_attn_head_k_all_pos", "k", ("layer", "head")
)
get_act_patch_attn_head_v_all_pos = _activation_patch(
    "get_act_patch_attn_head_v_all_pos", "v", ("layer", "head")
)
get_act_patch_attn_head_pattern_all_pos = _activation_patch(
    "get_act_patch_attn_head_pattern_all_pos", "pattern", ("layer", "head")
)
get_act_patch_attn_head_out_by_pos = _activation_patch(
    "get_act_patch_attn_head_out_by_pos", "z", ("layer", "pos", "head")
)
get_act_patch_attn_head_q_by_pos = _activation_patch(
    "get_act_patch_attn_head_q_by_pos", "q", ("layer", "pos", "head")
)
get_act_patch_attn_head_k_by_pos = _activation_patch(
    "get_act_patch_attn_head_k_by_pos", "k", ("layer", "pos", "head")
)
get_act_patch_attn_head_v_by_pos = _activation_patch(
    "get_act_patch_attn_head_v_by_pos", "v", ("layer", "pos", "head")
)
get_act_patch_attn_head_pattern_by_pos = _activation_patch(
    "get_act_patch_attn_head_pattern_by_pos", "pattern", ("layer", "head", "dest_pos")
)


get_act_patch_attn_head_pattern_dest_src_pos = _activation_patch(
    "get_act_patch_attn_head_pattern_dest_src_pos",
    "pattern",
    ("layer", "head", "dest_pos", "src_pos"),
)


def _pad_heads(result: torch.Tensor, n_heads: int) -> torch.Tensor:
    """k/v results of grouped-query models have n_kv_heads columns: pad to n_heads with zeros,
    as TransformerLens does, so they stack with the others."""
    return torch.nn.functional.pad(result, (0, n_heads - result.shape[-1]))


@checked()
def get_act_patch_block_every(
    model: Any, corrupted_tokens: Any, clean_cache: Any, metric: PatchingMetric
) -> torch.Tensor:
    """resid_pre, attn_out and mlp_out patched at every (layer, pos): shape [3, n_layers, pos]."""
    return torch.stack(
        [
            fn(model, corrupted_tokens, clean_cache, metric)
            for fn in (get_act_patch_resid_pre, get_act_patch_attn_out, get_act_patch_mlp_out)
        ]
    )


@checked()
def get_act_patch_attn_head_all_pos_every(
    model: Any, corrupted_tokens: Any, clean_cache: Any, metric: PatchingMetric
) -> torch.Tensor:
    """Each head's output, q, k, v and pattern patched at all positions: [5, n_layers, n_heads]
    (k and v padded with zeros to n_heads for grouped-query models, as TransformerLens does)."""
    args = (model, corrupted_tokens, clean_cache, metric)
    n_heads = model.cfg.n_heads
    return torch.stack(
        [
            get_act_patch_attn_head_out_all_pos(*args),
            get_act_patch_attn_head_q_all_pos(*args),
            _pad_heads(get_act_patch_attn_head_k_all_pos(*args), n_heads),
            _pad_heads(get_act_patch_attn_head_v_all_pos(*args), n_heads),
            get_act_patch_attn_head_pattern_all_pos(*args),
        ]
    )


@checked()
def get_act_patch_attn_head_by_pos_every(
    model: Any, corrupted_tokens: Any, clean_cache: Any, metric: PatchingMetric
) -> torch.Tensor:
    """Each head's output, q, k, v and pattern patched at every position:
    [5, n_layers, pos, n_heads] (the pattern's (layer, head, dest_pos) moved to match)."""
    args = (model, corrupted_tokens, clean_cache, metric)
    n_heads = model.cfg.n_heads
    return torch.stack(
        [
            get_act_patch_attn_head_out_by_pos(*args),
            get_act_patch_attn_head_q_by_pos(*args),
            _pad_heads(get_act_patch_attn_head_k_by_pos(*args), n_heads),
            _pad_heads(get_act_patch_attn_head_v_by_pos(*args), n_heads),
            get_act_patch_attn_head_pattern_by_pos(*args).transpose(1, 2),
        ]
    )
