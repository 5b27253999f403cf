"""`from_pretrained(..., fold_ln=True, center_unembed=True)`: TransformerLens's load-time weight
processing, applied to the model hooklens loads (in place, before it is wrapped).

- `fold_ln`: every block norm (ln1, ln2) and the final norm keeps only its normalization
  (RMSNorm divides by the RMS; LayerNorm centres and divides): its weight, and a LayerNorm's bias,
  move into the linear layers that read its output, which are found by running the model once
  (a layer reads a norm when its input is that norm's output or a view of it). LayerNorm readers
  are also centred over d_model, as TransformerLens does. `cfg.normalization_type` becomes
  "RMSPre" / "LNPre"; `ln1.hook_normalized` is then the normalized stream without the weight, and
  `model.W_Q`, `model.W_U`, ... are the folded weights, as in TransformerLens.
- `center_unembed`: the unembedding's weight (and bias) lose their mean over the vocabulary.
  Logits change by one constant per position; probabilities do not.

An unembedding tied to the embedding is untied first (a copy of the weight), so the embedding
keeps its values. The model's logits before and after are compared on a probe prompt (log
probabilities for `center_unembed`); a model whose norms feed anything else than the linear
layers found (a mixture of experts' gathered tokens, a convolution, a post-LN residual) does not
reproduce them and is refused with the norm that did not fold.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from .._errors import ArgumentError
from ..architectures._spec import ArchSpec, text_config
from .linear import _is_conv1d, bias_of, qkv_modules

MSG_POST_LN = """fold_ln=True: {family} normalizes after each block's attention and MLP (post-LN),
so a norm's output is the residual stream itself and its weight cannot move into the layers that
read it (TransformerLens folds pre-norm models only). Load without fold_ln; for a folded copy of
the weights use model.processed_weights(fold_ln=True)."""

MSG_GATED = """fold_ln=True: {family}'s {norms} multiply the norm's output by a gate computed
from it (norm(x) * sigmoid(mlp(norm(x)))), so the norm is not a plain scale and its weight
cannot move into the layers that read the gated output. Load without fold_ln."""

MSG_NO_READER = """fold_ln=True: no linear layer of this {family} model reads the output of
{norm} directly (a mixture of experts' router and experts keep their own weight tensors, or
another step comes first), so its weight has nowhere to go. Load without fold_ln;
model.processed_weights(fold_ln=True) gives a folded copy of the weights."""

MSG_SHARED = """fold_ln=True: {reader} reads more than one norm's output (or runs more than
once per forward) in this {family} model, so one norm's weight cannot be folded into it. Load
without fold_ln."""

MSG_CHANGED = """{what}=True changed this {family} model's outputs (by {diff:.3g} on a probe
prompt): the output of {norms} also goes to something other than the linear layers
that read it directly (e.g. experts that gather their tokens first), so its weight cannot
move. Load without {what}; model.processed_weights({what}=True) gives a processed copy of the
weights in TransformerLens's shapes."""

MSG_UNEMBED_CHANGED = """center_unembed=True changed this {family} model's log probabilities (by
{diff:.3g} on a probe prompt): what follows its unembedding is not shift-invariant. Load without
center_unembed."""

MSG_SOFTCAP = """center_unembed=True would change this {family} model's probabilities: its final
logit soft-cap (tanh) is not shift-invariant. Load without center_unembed."""

MSG_CENTER_WRITING = """center_writing_weights=True: hooklens does not centre the weights that
write to the residual stream of a LayerNorm model ({family}) at load (the stream would lose its
mean over d_model). Load without it; model.processed_weights(fold_ln=True,
center_writing_weights=True) gives the centred weights as a copy."""

MSG_VALUE_BIASES = """fold_value_biases=True: this {family} model's attention has value biases,
and hooklens does not move them into b_O at load. Load without it;
model.processed_weights(fold_value_biases=True) gives the folded weights as a copy."""

#: TransformerLens's load-time processing flags, in the order it applies them.
PROCESSING = ("fold_ln", "center_writing_weights", "center_unembed", "fold_value_biases")


def _probe_tokens(hf_model: nn.Module) -> torch.Tensor:
    config = text_config(hf_model.config)
    vocab = int(getattr(config, "vocab_size", 0) or 0) or 100
    device = next(hf_model.parameters()).device
    ids = torch.randint(0, min(vocab, 1000), (1, 8), generator=torch.Generator().manual_seed(0))
    return ids.to(device)


def _logits(hf_model: nn.Module, tokens: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return hf_model(tokens, use_cache=False).logits.float()


def _norms(hf_model: nn.Module, spec: ArchSpec) -> dict[str, nn.Module]:
    """The norms TransformerLens folds, by the name of their hook point's prefix."""
    blocks: Any = hf_model.get_submodule(spec.blocks)
    norms: dict[str, nn.Module] = {}
    for layer, block in enumerate(blocks):
        for which, path in (("ln1", spec.ln1), ("ln2", spec.ln2)):
            if path is not None:
                norms[f"blocks.{layer}.{which}"] = block.get_submodule(path)
    if spec.final_norm is not None:
        norms["ln_final"] = hf_model.get_submodule(spec.final_norm)
    return norms


def gated_block_norms(hf_model: nn.Module, spec: ArchSpec) -> list[str]:
    """The block norms (`blocks.*.ln1`, ...) that are gated norms (`ArchSpec.gated_norm`)."""
    blocks: Any = hf_model.get_submodule(spec.blocks)
    return sorted(
        {
            f"blocks.*.{which}"
            for block in blocks
            for which, path in (("ln1", spec.ln1), ("ln2", spec.ln2))
            if path is not None and spec.norm_module(block, path) is not block.get_submodule(path)
        }
    )


def _weight(module: nn.Module) -> torch.Tensor:
    weight = getattr(module, "weight", None)
    assert isinstance(weight, torch.Tensor), f"{type(module).__name__} has no weight"
    return weight


def _is_linear(module: nn.Module) -> bool:
    return isinstance(module, nn.Linear) or _is_conv1d(module)


def _readers(hf_model: nn.Module, norms: dict[str, nn.Module], spec: ArchSpec,
             tokens: torch.Tensor) -> dict[str, list[nn.Module]]:  # fmt: skip
    """For each norm, the linear layers whose input is its output (or a view of it), from one
    forward pass of the model."""
    outputs: list[tuple[str, torch.Tensor]] = []  # kept alive so storages stay distinct
    calls: list[tuple[nn.Module, torch.Tensor]] = []

    def on_norm(name: str) -> Any:
        def hook(module: nn.Module, args: Any, out: Any) -> None:
            if isinstance(out, torch.Tensor):
                outputs.append((name, out))

        return hook

    def on_linear(module: nn.Module, args: Any) -> None:
        if args and isinstance(args[0], torch.Tensor):
            calls.append((module, args[0]))

    handles = [norm.register_forward_hook(on_norm(n)) for n, norm in norms.items()]
    handles += [m.register_forward_pre_hook(on_linear) for m in hf_model.modules() if _is_linear(m)]
    try:
        _logits(hf_model, tokens)
    finally:
        for handle in handles:
            handle.remove()
    by_storage = {out.untyped_storage().data_ptr(): name for name, out in outputs}
    readers: dict[str, list[nn.Module]] = {name: [] for name in norms}
    seen: dict[int, int] = {}
    for module, x in calls:
        seen[id(module)] = seen.get(id(module), 0) + 1
        name = by_storage.get(x.untyped_storage().data_ptr())
        if name is None:
            continue
        if seen[id(module)] > 1:
            raise ArgumentError(MSG_SHARED.format(reader=type(module).__name__, family=spec.family))
        readers[name].append(module)
    for name, found in readers.items():
        if not found:
            raise ArgumentError(MSG_NO_READER.format(family=spec.family, norm=name))
    return readers


def _untie(hf_model: nn.Module, modules: list[nn.Module]) -> None:
    """Give each module a weight of its own where it shares one with another module (a tied
    unembedding), so processing it leaves the other module's values alone."""
    owners: dict[int, int] = {}
    for module in hf_model.modules():
        for param in module.parameters(recurse=False):
            owners[id(param)] = owners.get(id(param), 0) + 1
    untied = False
    for module in modules:
        weight = _weight(module)
        if owners.get(id(weight), 0) > 1:
            module.weight = nn.Parameter(
                weight.detach().clone(), requires_grad=weight.requires_grad
            )
            owners[id(weight)] -= 1
            untied = True
    if untied:  # so that saving and loading the model again does not tie them back
        root: Any = hf_model.config
        for config in {id(c): c for c in (root, text_config(root))}.values():
            if getattr(config, "tie_word_embeddings", False):
                config.tie_word_embeddings = False


def _fold_norm(norm: nn.Module, readers: list[nn.Module], spec: ArchSpec) -> None:
    """Move `norm`'s weight (offset + w) and bias into `readers`; the norm then multiplies by 1."""
    weight = getattr(norm, "weight", None)
    bias = bias_of(norm)
    scale = None if weight is None else (weight.detach().float() + spec.norm_weight_offset)
    for reader in readers:
        # (in, out) view of the reader's weight, in float for the arithmetic
        reader_weight = _weight(reader)
        w = reader_weight.detach().float()
        w_in_out = w if _is_conv1d(reader) else w.T
        if bias is not None:
            shift = bias.detach().float() @ w_in_out
            old = bias_of(reader)
            if old is None:
                new = shift.to(reader_weight.dtype)
                reader.bias = nn.Parameter(new, requires_grad=reader_weight.requires_grad)
            else:
                old.data.copy_(old.detach().float() + shift)
        if scale is not None:
            w_in_out = w_in_out * scale[:, None]
        if spec.norm == "layernorm":  # the normalized input is centred: centre the readers too
            w_in_out = w_in_out - w_in_out.mean(0, keepdim=True)
        reader_weight.data.copy_(w_in_out if _is_conv1d(reader) else w_in_out.T)
    if weight is not None:
        weight.data.fill_(1.0 - spec.norm_weight_offset)
    if bias is not None:
        bias.data.zero_()


def _check(before: torch.Tensor, after: torch.Tensor, message: str, dtype: torch.dtype,
           **names: str) -> None:  # fmt: skip
    """Raise `message` (formatted with `names` and the difference) unless `after` is `before`
    up to rounding in `dtype`."""
    tolerance = 1e-4 if dtype in (torch.float32, torch.float64) else 3e-2
    diff = float((after - before).abs().max())
    if diff > tolerance * max(1.0, float(before.abs().max())):
        raise ArgumentError(message.format(diff=diff, **names))


def fold_norms(hf_model: nn.Module, spec: ArchSpec) -> None:
    """TransformerLens's `fold_ln`, in place on `hf_model` (see the module docstring). Raises
    `ArgumentError` when the model does not allow it; the model is then left changed, so only a
    model hooklens loaded itself is processed."""
    if spec.post_ln:
        raise ArgumentError(MSG_POST_LN.format(family=spec.family))
    gated = gated_block_norms(hf_model, spec)
    if gated:
        raise ArgumentError(MSG_GATED.format(family=spec.family, norms=", ".join(gated)))
    tokens = _probe_tokens(hf_model)
    before = _logits(hf_model, tokens)
    norms = _norms(hf_model, spec)
    readers = _readers(hf_model, norms, spec, tokens)
    _untie(hf_model, [m for found in readers.values() for m in found])
    dtype = next(hf_model.parameters()).dtype
    # one kind of norm at a time, so a refusal names the kind that did not fold
    for kind, label in (("ln1", "blocks.*.ln1"), ("ln2", "blocks.*.ln2"), ("ln_final", "ln_final")):
        names = [n for n in norms if n.split(".")[-1] == kind]
        if not names:
            continue
        with torch.no_grad():
            for name in names:
                _fold_norm(norms[name], readers[name], spec)
        after = _logits(hf_model, tokens)
        _check(before, after, MSG_CHANGED, dtype, what="fold_ln", family=spec.family, norms=label)


def center_unembed(hf_model: nn.Module, spec: ArchSpec) -> None:
    """TransformerLens's `center_unembed`, in place: W_U and b_U lose their mean over the
    vocabulary (log probabilities are unchanged, and checked)."""
    cap = spec.final_logit_softcap
    if cap is not None and getattr(text_config(hf_model.config), cap, None):
        raise ArgumentError(MSG_SOFTCAP.format(family=spec.family))
    tokens = _probe_tokens(hf_model)
    before = _logits(hf_model, tokens).log_softmax(-1)
    unembed = hf_model.get_submodule(spec.unembed)
    _untie(hf_model, [unembed])
    with torch.no_grad():
        w = _weight(unembed)  # (vocab, d_model) for nn.Linear, (d_model, vocab) for Conv1D
        vocab_axis = 1 if _is_conv1d(unembed) else 0
        w.data.copy_(w.detach().float() - w.detach().float().mean(vocab_axis, keepdim=True))
        bias = bias_of(unembed)
        if bias is not None:
            bias.data.copy_(bias.detach().float() - bias.detach().float().mean())
    after = _logits(hf_model, tokens).log_softmax(-1)
    dtype = next(hf_model.parameters()).dtype
    _check(before, after, MSG_UNEMBED_CHANGED, dtype, family=spec.family)


def _has_value_biases(hf_model: nn.Module, spec: ArchSpec) -> bool:
    blocks: Any = hf_model.get_submodule(spec.blocks)
    if spec.qkv is None:
        return True  # cannot tell: treat as having them
    reused = dict(spec.kv_reused)  # their values are an earlier layer's, looked at there
    for layer in (i for i in spec.attention_layers(len(blocks)) if i not in reused):
        mods = qkv_modules(spec, blocks[layer])
        if bias_of(mods[-1]) is not None:
            return True
    return False


def process(hf_model: nn.Module, spec: ArchSpec, asked: list[str]) -> tuple[str, ...]:
    """Apply TransformerLens's processing flags `asked` (names in `PROCESSING`) to `hf_model` in
    place; returns those that changed weights. As in TransformerLens, centring the writing
    weights of an RMSNorm model and folding value biases a model does not have do nothing."""
    if "center_writing_weights" in asked and spec.norm == "layernorm":
        raise ArgumentError(MSG_CENTER_WRITING.format(family=spec.family))
    if "fold_value_biases" in asked and _has_value_biases(hf_model, spec):
        raise ArgumentError(MSG_VALUE_BIASES.format(family=spec.family))
    if "fold_ln" in asked:
        fold_norms(hf_model, spec)
    if "center_unembed" in asked:
        center_unembed(hf_model, spec)
    return tuple(name for name in ("fold_ln", "center_unembed") if name in asked)
