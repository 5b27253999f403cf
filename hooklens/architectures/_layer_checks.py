"""Blocks the derived template cannot describe although block 0 fits it.

`derive` reads the template from one block; these checks look at every block for what would
make the adapter wrong on some layer, and say why in words the refusal shows.
"""

from __future__ import annotations

from collections.abc import Container, Iterable
from typing import Any

import torch
from torch import nn

from ._names import HYPER_STREAMS, PER_LAYER_UNREAD, ROUTER, SINKS, STREAM_SCALE


def has_module(root: nn.Module, path: str) -> bool:
    try:
        root.get_submodule(path)
    except AttributeError:
        return False
    return True


def has_sinks(attn_mod: nn.Module) -> bool:
    """Whether the attention module holds learned sink logits (one per head)."""
    return any(isinstance(getattr(attn_mod, n, None), nn.Parameter) for n in SINKS)


def per_layer_config(text: Any) -> str | None:
    """Why the template cannot describe a model whose config gives some layers their own number
    of query heads or latent attention sizes (transformers' per-layer configs, Dots3 Note's
    `per_layer_config`), or None. Per-layer head widths and key/value heads are read from each
    layer's modules (Gemma 4); these are read once for every layer."""
    differ = getattr(text, "per_layer_attributes", None)
    unread = sorted(set(differ) & set(PER_LAYER_UNREAD)) if isinstance(differ, set) else []
    if not unread:
        return None
    return (
        f"its config gives some layers their own {', '.join(unread)} (a per-layer config, "
        "config.per_layer_config), and the template reads one value of each for every layer"
    )


def unlike_layers(
    blocks: list[nn.Module], attending: Iterable[int], sources: Any, reusing: Container[int] = ()
) -> str | None:
    """Why the template does not fit every block (None when it does): an attending layer
    without the q/k modules of block 0 (it reuses keys and values from where hooklens cannot
    tell; `reusing`: layers known to read an earlier layer's, whose k module is not looked
    for)."""
    for i in attending:
        for source in sources[:1] if i in reusing else sources:
            if source is not None and not has_module(blocks[i], source.module):
                return (
                    f"layer {i}'s attention has no {source.module} (it reuses the keys and "
                    "values an earlier layer computed), and hooklens's attention points read "
                    "them there"
                )
    return None


def stream_scaled(blocks: list[nn.Module]) -> str | None:
    """Why a block's output is not its input plus its parts' outputs (`ArchSpec.unsummed`)
    when blocks multiply the whole stream after adding their parts (Gemma 4's `layer_scalar`,
    which its published checkpoints set), or None."""
    for name in STREAM_SCALE:
        scales = [getattr(b, name, None) for b in blocks]
        values = [float(s.flatten()[0]) for s in scales if isinstance(s, torch.Tensor)]
        if any(v != 1 for v in values):
            shown = ", ".join(f"{v:.3g}" for v in values[:4]) + (", ..." if len(values) > 4 else "")
            return (
                f"its blocks multiply the whole residual stream by {name} ({shown}) after "
                "adding their parts, so hook_resid_post is hook_resid_pre plus what the block "
                f"adds, times the block's {name}, and no sum of parts is the stream"
            )
    return None


def head_counts(blocks: list[nn.Module], attending: Iterable[int], attn: str | None) -> str | None:
    """Why the layers cannot be described when their attention modules have different numbers
    of query heads (`num_heads`; hooklens's widths per layer keep one count), or None."""
    counts = {
        i: getattr(blocks[i].get_submodule(attn), "num_heads", None) for i in attending if attn
    }
    found = {n for n in counts.values() if isinstance(n, int)}
    if len(found) < 2:
        return None
    shown = ", ".join(f"layer {i}: {n}" for i, n in list(counts.items())[:4])
    return f"its layers' attention has different numbers of query heads ({shown})"


def parallel_streams(text_config: Any) -> str | None:
    """Why a model whose residual stream is several parallel streams (hyper-connections) has no
    single stream to hook (None when it has one)."""
    for name, kind in HYPER_STREAMS.items():
        n = getattr(text_config, name, None)
        if isinstance(n, int) and n > 1:
            return (
                f"its residual stream is {n} parallel streams ({kind}, config "
                f"{name}={n}): each block reads a learned mix of them and writes its output "
                "back into each with learned weights, and the model mixes them into one after "
                "the last block, so there is no one d_model-wide stream for hook_resid_pre/"
                "hook_resid_post, and resid_pre + attn_out + mlp_out = resid_post cannot hold"
            )
    return None


def routed_queries(attn_mod: nn.Module) -> str | None:
    """Why an attention module whose queries come from routed experts (a mixture of attention
    heads, JetMoE's JetMoeMoA) has no per-head points (None when it is not one)."""
    if any(n in ("q_proj", "qkv_proj") for n, _ in attn_mod.named_children()):
        return None
    for name, child in attn_mod.named_children():
        if any(isinstance(getattr(child, r, None), nn.Module) for r in ROUTER):
            return (
                f"its attention {type(attn_mod).__name__} is a mixture of attention heads: a "
                f"router in {name} ({type(child).__name__}) picks, for each token, which expert "
                "query and output projections fill its query heads, so a head index names a "
                "routing slot whose weights change from token to token, not one head's "
                "W_Q/W_O; hook_q, hook_pattern and hook_z per head, and the per-head weights "
                "TransformerLens's points and analyses assume, would have no fixed meaning"
            )
    return None
