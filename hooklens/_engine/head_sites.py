"""Sites of the on-demand points TransformerLens computes only when configured to.

`hook_attn_in`, `hook_q_input`, `hook_k_input`, `hook_v_input` (per-head copies of the stream
entering the block), `attn.hook_result` (per-head outputs) and `hook_mlp_in` (the MLP's own
input stream). Hugging Face's modules compute none of these, so while one is hooked its site
recomputes what depends on it from the adapter's weights (views, `linear.py`):

- per-head inputs: a pre-hook on ln1 fires them; each head's input is normalized by ln1's own
  `forward` (so `ln1.hook_scale` / `ln1.hook_normalized` still show the block's shared input)
  and projected with that head's weights; the q/k/v modules' outputs are replaced by the result.
- `attn.hook_result`: a hook on the output projection splits it per head; attention's output
  becomes the (possibly edited) results' sum plus b_O.
- `hook_mlp_in`: a pre-hook on ln2 hands the MLP's norm a copy of its input, so edits reach the
  MLP and not the residual stream (post-LN blocks: on ln1, whose output is also the residual).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from ..architectures._convs import conv_message
from . import module_hooks
from .linear import (
    O_WEIGHTS,
    bias_of,
    join_qkv,
    module_output,
    o_module,
    qkv_modules,
    read_o,
    read_qkv,
)

if TYPE_CHECKING:
    from .sites import Builder


def add_head_sites(b: Builder, block: nn.Module, layer: int) -> None:
    """The on-demand points of one block whose adapter describes the weights they need."""
    feats = b.spec.layer_features(b.cfg_hf, layer)  # a hybrid's mixer layer has no attention
    attends = "attention" in feats
    cfg = b.cfg.layer(layer)  # this layer's own head widths
    qkv_read = b.spec.qkv is not None and _readable(lambda: read_qkv(b.spec, cfg, block))
    # a factor on k_proj's output (Falcon-H1) is in W_K but also applied by the model after the
    # k_proj output these points replace: they are left out rather than scaled twice
    scaled_k = b.spec.factor(block, "k") != 1
    # likewise a gated norm before attention: its gate would be left out of the recomputation
    ln1 = b.spec.ln1
    gated = ln1 is not None and b.spec.norm_module(block, ln1) is not block.get_submodule(ln1)
    if attends and qkv_read and b.spec.ln1 is not None and not (scaled_k or gated):
        _input_site(b, block, layer)
    o_read = attends and b.spec.o_proj is not None
    if o_read and _readable(lambda: read_o(b.spec, cfg, block)):
        _result_site(b, block, layer)
    if b.spec.ln2 is not None and "mlp" in feats:
        _mlp_in_site(b, block, b.spec.ln1 if b.spec.post_ln else b.spec.ln2, layer)


def left_out_reason(spec: Any, block: nn.Module, suffix: str) -> str | None:
    """Why on-demand point `suffix` is left out where the adapter says it (None: the generic
    reason): `attn.hook_result` after a convolution over positions (Inkling's `attn_sconv`)."""
    if suffix != "attn.hook_result":
        return None
    return conv_message(spec, block, "attn_out", O_WEIGHTS)


def _readable(read: Any) -> bool:
    """Whether a weight the point recomputes from can be read (a derived adapter may name an
    output projection hooklens cannot read, e.g. BitNet's, whose o_proj is preceded by a norm
    folded into it, or a q projection that also holds a gate): without it the point is left out
    rather than computed wrong."""
    try:
        read()
    except (TypeError, ValueError, AttributeError, RuntimeError):
        return False
    return True


def _first_input(args: tuple[Any, ...], kwargs: dict[str, Any]) -> torch.Tensor:
    return args[0] if args else kwargs["hidden_states"]


def _input_site(b: Builder, block: nn.Module, layer: int) -> None:
    spec, cfg = b.spec, b.cfg.layer(layer)
    assert spec.ln1 is not None
    # post-LN (BERT): attention reads the block's input itself, ln1 comes after it
    ln1 = block.get_submodule(spec.attn if spec.post_ln else spec.ln1)
    normalize = (lambda x: x) if spec.post_ln else ln1.forward
    mods = qkv_modules(spec, block)
    pending: list[torch.Tensor] = []

    def install() -> list[Any]:
        handles = [module_hooks.pre_hook(ln1, fire, with_kwargs=True)]
        for i, mod in enumerate(mods):
            handles.append(module_hooks.forward_hook(mod, _replacer(i), prepend=True))
        return handles

    site = b._site(install)
    attn_in = b._new("hook_attn_in", layer, site)
    q_in = b._new("hook_q_input", layer, site)
    k_in = b._new("hook_k_input", layer, site)
    v_in = b._new("hook_v_input", layer, site)
    assert q_in is not None and k_in is not None and v_in is not None
    nh, nkv = cfg.n_heads, cfg.n_kv_heads

    def per_head(x: torch.Tensor, n: int) -> torch.Tensor:
        return x.unsqueeze(-2).expand(*x.shape[:-1], n, x.shape[-1]).clone()

    def fire(mod: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        x = b._bpd(_first_input(args, kwargs))
        shared = per_head(x, nh)
        if attn_in is not None and attn_in.fns:
            shared = attn_in.fire(shared)
        kv = shared if attn_in is not None else per_head(x, nkv)  # attn_in exists without GQA
        inputs = []
        for point, base in ((q_in, shared), (k_in, kv), (v_in, kv)):
            inputs.append(point.fire(base.clone()) if point.fns else base)
        outs = []
        # the modules' own outputs: a factor the attention applies after them (MiMo-V2-Flash's
        # v_scale) is applied by the model to what these points hand it
        weights = read_qkv(spec, cfg, block, modules=True)
        for x_h, (w, bias) in zip(inputs, weights, strict=True):
            normed = normalize(x_h)
            y = torch.einsum("bphd,hde->bphe", normed, w.to(normed.dtype))
            outs.append(y if bias is None else y + bias)
        pending[:] = join_qkv(spec, outs)

    def _replacer(i: int) -> Any:
        def hook(mod: nn.Module, args: Any, out: torch.Tensor) -> torch.Tensor:
            return module_output(spec, i, out, pending[i], nh)

        return hook


def _result_site(b: Builder, block: nn.Module, layer: int) -> None:
    spec, cfg = b.spec, b.cfg.layer(layer)
    o = o_module(spec, block)
    site = b._site(lambda: [module_hooks.forward_hook(o, hook)])
    point = b._new("attn.hook_result", layer, site)
    assert point is not None

    # what the block adds is o_proj's output times this factor (Granite's residual_multiplier,
    # Falcon-H1's attention output multiplier), which W_O includes: the heads' results sum to
    # hook_attn_out less b_O, and o_proj's output is that sum divided by the factor again
    factor = spec.added_scale(block, "attn_out")

    def hook(mod: nn.Module, args: Any, out: torch.Tensor) -> torch.Tensor:
        z = b._bpd(args[0])
        w, bias = read_o(spec, cfg, block)[0], bias_of(mod)  # the projection's own bias
        heads = z.view(*z.shape[:-1], cfg.n_heads, cfg.d_head)
        result = point.fire(torch.einsum("bphe,hed->bphd", heads, w.to(z.dtype)))
        total = result.sum(-2) if factor == 1 else result.sum(-2) / factor
        return (total if bias is None else total + bias).reshape(out.shape)


def _mlp_in_site(b: Builder, block: nn.Module, norm: str | None, layer: int) -> None:
    """A copy of the MLP norm's input (ln2; post-LN: ln1, whose output is also the residual,
    as in TransformerLens's BertBlock)."""
    ln2 = block.get_submodule(norm or "")
    # registered after resid_mid's in-place pre-hook (which is prepended), so edits of
    # resid_mid reach both the residual and this copy
    site = b._site(lambda: [module_hooks.pre_hook(ln2, hook, with_kwargs=True)])
    point = b._new("hook_mlp_in", layer, site)
    if point is None:
        return

    def hook(mod: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        t = _first_input(args, kwargs)
        new = point.fire(b._bpd(t).clone()).reshape(t.shape)
        if args:
            return (new, *args[1:]), kwargs
        return args, {**kwargs, "hidden_states": new}
