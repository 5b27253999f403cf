"""Activation patching as a batched engine operation.

``sweep`` patches one activation at a time (a cell: a layer and a position, or a layer and a
head) and measures a metric for every cell. Cells run as the batch elements of few forward
passes instead of one pass each, and no work is done that a patch cannot change:

- a patch at layer ``l`` leaves every layer below ``l`` as in the unpatched run, so a batch of
  cells starts at the lowest layer among them, on the unpatched residual stream there;
- with causal attention, a patch at position ``p`` leaves positions before ``p`` unchanged at
  every layer, so only positions from ``p`` on are run, attending to the unpatched run's cached
  keys and values for the earlier ones.

Cells are grouped into tiles of nearby layers and positions so that little is recomputed.
``patch`` applies a set of patches in one ordinary forward pass; it is also the reference the
tests compare ``sweep`` against.
"""

from ._run import Patcher, patch
from ._sweep import sweep, sweep_all
from ._tl import (
    get_act_patch_attn_head_all_pos_every,
    get_act_patch_attn_head_by_pos_every,
    get_act_patch_attn_head_k_all_pos,
    get_act_patch_attn_head_k_by_pos,
    get_act_patch_attn_head_out_all_pos,
    get_act_patch_attn_head_out_by_pos,
    get_act_patch_attn_head_pattern_all_pos,
    get_act_patch_attn_head_pattern_by_pos,
    get_act_patch_attn_head_pattern_dest_src_pos,
    get_act_patch_attn_head_q_all_pos,
    get_act_patch_attn_head_q_by_pos,
    get_act_patch_attn_head_v_all_pos,
    get_act_patch_attn_head_v_by_pos,
    get_act_patch_attn_out,
    get_act_patch_block_every,
    get_act_patch_mlp_out,
    get_act_patch_resid_mid,
    get_act_patch_resid_pre,
)
from ._types import POINTS, Patch, PatchingResult

__all__ = [
    "POINTS",
    "Patch",
    "Patcher",
    "PatchingResult",
    "get_act_patch_attn_head_all_pos_every",
    "get_act_patch_attn_head_by_pos_every",
    "get_act_patch_attn_head_k_all_pos",
    "get_act_patch_attn_head_k_by_pos",
    "get_act_patch_attn_head_out_all_pos",
    "get_act_patch_attn_head_out_by_pos",
    "get_act_patch_attn_head_pattern_all_pos",
    "get_act_patch_attn_head_pattern_by_pos",
    "get_act_patch_attn_head_pattern_dest_src_pos",
    "get_act_patch_attn_head_q_all_pos",
    "get_act_patch_attn_head_q_by_pos",
    "get_act_patch_attn_head_v_all_pos",
    "get_act_patch_attn_head_v_by_pos",
    "get_act_patch_attn_out",
    "get_act_patch_block_every",
    "get_act_patch_mlp_out",
    "get_act_patch_resid_mid",
    "get_act_patch_resid_pre",
    "patch",
    "sweep",
    "sweep_all",
]
