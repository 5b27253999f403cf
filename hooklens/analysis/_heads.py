"""Per-head and per-neuron decompositions of the residual stream, from a cache and the weights.

TransformerLens's `ActivationCache` methods `compute_head_results`, `stack_head_results`,
`stack_neuron_results`, `get_full_resid_decomposition` and `logit_attrs`, with its arguments and
meanings; `ActivationCache` delegates to these functions. Stacks put the component dimension
first: (components, [batch,] pos, d_model). A head's result is `z[..., h, :] @ W_O[h]` (z times
`attn.hook_gate` where attention's output is gated: W_O acts on the gated z); a
neuron's is `hook_post[..., n] * W_out[n]`; biases are one "bias" component.

`layer` counts stream boundaries 0..n_layers (n_layers, None or -1: the final stream), so
negative values mean what they mean in Python on that range.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch

from .._engine.caching import PosSlice, slice_axis
from ..architectures._convs import refuse_convolved

if TYPE_CHECKING:
    from .._engine.cache import ActivationCache


MSG_NOT_DIRECT = """{family}'s {what} is normalized before it is added to the residual stream
(a post-{what} norm), so per-head / per-neuron results do not sum to the stream: this
decomposition would not add up. Use cache.decompose_resid(), whose components are what each
sublayer added."""

MSG_HEAD = """{family}'s LM head ({head}) transforms the final stream (dense, activation,
LayerNorm) before the unembedding, so its logits are not linear in the stream: per-component
logit attributions do not exist. Use model.unembed_resid(stream) (the logit lens) instead."""
MSG_NO_GATE = """{family}'s attention output is gated (its output projection reads hook_z *
hook_gate), and this cache has {z} but not {gate}, so the heads' results cannot be computed.
Cache both: model.run_with_cache(tokens, names_filter=[..., "{gate}"])."""


def resolve_layer(layer: int | None, n_layers: int) -> int:
    """A stream boundary in 0..n_layers; None and negatives count from the final stream."""
    if layer is None:
        return n_layers
    if not -(n_layers + 1) <= layer <= n_layers:
        raise IndexError(
            f"layer {layer} is out of range: this model has {n_layers} layers, so layer is in "
            f"0..{n_layers} ({n_layers}, -1 or None for the final residual stream)"
        )
    return layer % (n_layers + 1)


def _writes_directly(cache: ActivationCache, kind: str) -> bool:
    """Whether the attention's (kind="attn") or MLP's output projection is what the block adds
    to the residual stream, read from the adapter's paths (Gemma's post-norms are not)."""
    spec = cache.model.spec
    if kind == "attn":
        out, proj = spec.attn_out, spec.o_proj or ""
        return out == spec.attn or proj == out or proj.startswith(out + ".")
    out, proj = spec.mlp_out, spec.mlp_down
    return proj == out or proj.startswith(out + ".")


def _check_direct(cache: ActivationCache, kind: str) -> None:
    cache._check_sum("a per-head / per-neuron decomposition of the stream")  # post-LN blocks
    spec, blocks = cache.model.spec, cache.model.hf_model.get_submodule(cache.model.spec.blocks)
    what = "a per-head / per-neuron decomposition of the stream"  # a convolution over positions
    refuse_convolved(spec, blocks[0], f"{kind}_out", what)  # type: ignore[index]
    if not _writes_directly(cache, kind):
        what = "attention" if kind == "attn" else "MLP"
        raise ValueError(MSG_NOT_DIRECT.format(family=cache.model.cfg.family, what=what))


def head_results(cache: ActivationCache, layer: int) -> torch.Tensor:
    """Block `layer`'s per-head results ([batch,] pos, n_heads, d_model)."""
    name = f"blocks.{layer}.attn.hook_result"
    if name in cache:
        return cache[name]
    z_name, gate = f"blocks.{layer}.attn.hook_z", f"blocks.{layer}.attn.hook_gate"
    z = cache[z_name]
    if gate in cache.model.hook_names():  # the output projection reads z * gate
        if gate not in cache:
            family = cache.model.cfg.family
            raise KeyError(MSG_NO_GATE.format(family=family, z=z_name, gate=gate))
        z = z * cache[gate]
    w_o = cache.model.weights.layer(layer).W_O.detach()
    return torch.einsum("...hd,hdm->...hm", z, w_o.to(z.device, z.dtype))


def compute_head_results(cache: ActivationCache, store: dict[str, torch.Tensor]) -> None:
    """Put `blocks.{l}.attn.hook_result` ([batch,] pos, n_heads, d_model) in `store` for every
    layer that lacks it (from `hook_z` and W_O): head results sum to `hook_attn_out - b_O`."""
    with torch.no_grad():
        for layer in range(cache.model.cfg.n_layers):
            name = f"blocks.{layer}.attn.hook_result"
            if name not in store:
                store[name] = head_results(cache, layer)


def _stream(cache: ActivationCache, layer: int, mlp_input: bool = False) -> torch.Tensor:
    cache._check_sum("incl_remainder (the stream minus the parts)")  # post-LN blocks
    n = cache.model.cfg.n_layers
    if layer >= n:
        return cache[f"blocks.{n - 1}.hook_resid_post"]
    if mlp_input:
        return cache[f"blocks.{layer}.hook_resid_mid"]
    return cache[f"blocks.{layer}.hook_resid_pre"]


def _empty(cache: ActivationCache, pos_slice: PosSlice) -> torch.Tensor:
    like = slice_axis(cache["hook_embed"], pos_slice, -2)
    return like.new_zeros((0, *like.shape))


def _finish(
    cache: ActivationCache,
    parts: list[torch.Tensor],
    labels: list[str],
    layer: int,
    pos_slice: PosSlice,
    incl_remainder: bool,
    apply_ln: bool,
    return_labels: bool,
) -> Any:
    """Per-layer (..., components, d_model) parts -> (components, ..., d_model), with the
    remainder of the stream entering `layer` and the norm reading it applied on request."""
    stack = torch.cat(parts, dim=-2).movedim(-2, 0) if parts else _empty(cache, pos_slice)
    if incl_remainder:
        rest = slice_axis(_stream(cache, layer), pos_slice, -2) - stack.sum(0)
        stack = torch.cat([stack, rest[None]])
        labels.append("remainder")
    if apply_ln:
        stack = cache.apply_ln_to_stack(stack, layer, pos_slice=pos_slice)
    return (stack, labels) if return_labels else stack


def stack_head_results(
    cache: ActivationCache,
    layer: int | None = -1,
    return_labels: bool = False,
    incl_remainder: bool = False,
    pos_slice: PosSlice = None,
    apply_ln: bool = False,
) -> Any:
    """Every head's result in the layers before `layer`: (layer * n_heads, [batch,] pos,
    d_model), labels "L{l}H{h}" (a hybrid's layers without attention have no heads: their
    mixers' outputs are in the remainder). `incl_remainder` adds the stream entering `layer`
    minus their sum ("remainder"); `apply_ln` applies the norm reading the stream at `layer`,
    linearly (`apply_ln_to_stack`)."""
    model = cache.model
    layer = resolve_layer(layer, model.cfg.n_layers)
    parts: list[torch.Tensor] = []
    labels: list[str] = []
    attending = model.spec.attention_layers(model.cfg.n_layers)
    for i in (i for i in range(layer) if i in attending):
        parts.append(slice_axis(head_results(cache, i), pos_slice, -3))
        labels.extend(f"L{i}H{h}" for h in range(model.cfg.n_heads))
    return _finish(cache, parts, labels, layer, pos_slice, incl_remainder, apply_ln, return_labels)


def stack_neuron_results(
    cache: ActivationCache,
    layer: int | None,
    pos_slice: PosSlice = None,
    neuron_slice: int | slice | None = None,
    return_labels: bool = False,
    incl_remainder: bool = False,
    apply_ln: bool = False,
) -> Any:
    """Every neuron's result in the layers before `layer` (`hook_post[n] * W_out[n]`, no bias):
    (layer * neurons, [batch,] pos, d_model), labels "L{l}N{n}". `neuron_slice` picks neurons.
    Memory: d_mlp times the MLP output per layer."""
    model = cache.model
    layer = resolve_layer(layer, model.cfg.n_layers)
    neurons = torch.arange(model.cfg.d_mlp)
    if neuron_slice is not None:
        neurons = neurons[neuron_slice].reshape(-1)
    parts: list[torch.Tensor] = []
    labels: list[str] = []
    for i in range(layer):
        post = slice_axis(cache[f"blocks.{i}.mlp.hook_post"], pos_slice, -2)
        w_out = model.weights.layer(i).W_out.detach().to(post.device, post.dtype)
        idx = neurons.to(post.device)
        parts.append(post[..., idx, None] * w_out[idx])
        labels.extend(f"L{i}N{int(n)}" for n in neurons)
    return _finish(cache, parts, labels, layer, pos_slice, incl_remainder, apply_ln, return_labels)


def accumulated_bias(
    cache: ActivationCache, layer: int, mlp_input: bool = False, include_mlp_biases: bool = True
) -> torch.Tensor:
    """The sum of the output biases written before `layer` (b_O of each attention, b_out of each
    MLP; with `mlp_input` also layer `layer`'s b_O): (d_model,)."""
    w = cache.model.weights
    total: torch.Tensor | None = None
    for i in range(layer + (1 if mlp_input else 0)):
        lw = w.layer(i)
        terms = [lw.b_O]
        if include_mlp_biases and i < layer:
            terms.append(lw.b_out)
        for t in terms:
            total = t.detach() if total is None else total + t.detach().to(total.device)
    if total is None:
        ref = w.W_U
        return torch.zeros(cache.model.cfg.d_model, dtype=ref.dtype, device=ref.device)
    return total


def get_full_resid_decomposition(
    cache: ActivationCache,
    layer: int | None = None,
    mlp_input: bool = False,
    expand_neurons: bool = True,
    apply_ln: bool = False,
    pos_slice: PosSlice = None,
    return_labels: bool = False,
) -> Any:
    """The stream entering `layer` (its MLP with `mlp_input`) as a sum of every head's result,
    every neuron's result (or each MLP's output, `expand_neurons=False`), "embed", "pos_embed"
    and the accumulated "bias": (components, [batch,] pos, d_model). The components sum to the
    stream (tested)."""
    model = cache.model
    n = model.cfg.n_layers
    layer = resolve_layer(layer, n)
    if mlp_input:
        if layer >= n:
            raise ValueError("mlp_input=True needs a layer below n_layers (the final stream "
                             "feeds the unembedding, not an MLP)")  # fmt: skip
        cache._check_mid()
    _check_direct(cache, "attn")
    heads, labels = stack_head_results(
        cache, layer + (1 if mlp_input else 0), return_labels=True, pos_slice=pos_slice
    )
    parts = [heads]
    if layer > 0:
        if expand_neurons:
            _check_direct(cache, "mlp")
            neurons, n_labels = stack_neuron_results(
                cache, layer, pos_slice=pos_slice, return_labels=True
            )
        else:
            neurons, n_labels = cache.decompose_resid(
                layer, pos_slice=pos_slice, incl_embeds=False, mode="mlp", return_labels=True
            )
        parts.append(neurons)
        labels.extend(n_labels)
    for name, label in (("hook_embed", "embed"), ("hook_pos_embed", "pos_embed")):
        if name in model.hook_dict:
            parts.append(slice_axis(cache[name], pos_slice, -2)[None])
            labels.append(label)
    bias = accumulated_bias(cache, layer, mlp_input, include_mlp_biases=expand_neurons)
    like = parts[-1]
    parts.append(bias.to(like.device, like.dtype).expand(1, *like.shape[1:]))
    labels.append("bias")
    stack = torch.cat(parts)
    if apply_ln:
        stack = cache.apply_ln_to_stack(stack, layer, mlp_input, pos_slice=pos_slice)
    return (stack, labels) if return_labels else stack


def residual_directions(cache: ActivationCache, tokens: Any) -> torch.Tensor:
    """W_U's column for each token: an id or a one-token string -> (d_model,); ids (batch,) or
    (batch, pos) -> (batch, [pos,] d_model)."""
    w_u = cache.model.W_U
    if isinstance(tokens, str):
        tokens = cache.model.to_single_token(tokens)
    if isinstance(tokens, int):
        return w_u[:, tokens]
    if isinstance(tokens, torch.Tensor):
        return w_u.T[tokens.to(w_u.device)]
    raise TypeError(f"tokens must be an int, a one-token string or a tensor of ids, not {tokens!r}")


def _shape(cache: ActivationCache, tokens: Any) -> tuple[int, ...]:
    return tuple(tokens.shape) if isinstance(tokens, torch.Tensor) else ()


def logit_attrs(
    cache: ActivationCache,
    residual_stack: torch.Tensor,
    tokens: Any,
    incorrect_tokens: Any = None,
    pos_slice: PosSlice = None,
    batch_slice: int | slice | None = None,
    has_batch_dim: bool | None = None,
) -> torch.Tensor:
    """Each component's contribution to the logit of `tokens` (minus `incorrect_tokens`), as
    TransformerLens computes it: the final norm is applied to the stack first, linearly, with
    the cached scale (`apply_ln_to_stack(stack, None, pos_slice=, batch_slice=)`), so pass the
    *unnormalized* stack. `residual_stack` (components, [batch,] [pos,] d_model); `tokens` an
    id, a one-token string, or ids (batch,) / (batch, pos) broadcasting against the stack.
    `has_batch_dim` (None: the cache's own) says whether `batch_slice` applies to the scale.
    Returns (components, [batch,] [pos]).
    """
    if cache.model.spec.head is not None:
        raise ValueError(MSG_HEAD.format(family=cache.model.cfg.family, head=cache.model.spec.head))
    if incorrect_tokens is not None and _shape(cache, tokens) != _shape(cache, incorrect_tokens):
        raise ValueError(
            "tokens and incorrect_tokens must have the same shape; got "
            f"{_shape(cache, tokens)} and {_shape(cache, incorrect_tokens)}"
        )
    direction = residual_directions(cache, tokens)
    if incorrect_tokens is not None:
        direction = direction - residual_directions(cache, incorrect_tokens)
    scaled = cache.apply_ln_to_stack(
        residual_stack,
        None,
        pos_slice=pos_slice,
        batch_slice=batch_slice,
        has_batch_dim=cache.has_batch_dim if has_batch_dim is None else has_batch_dim,
    )
    scaled = scaled.to(direction.device, direction.dtype)
    return (scaled * direction).sum(-1)
