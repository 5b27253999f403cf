"""Where pre-rotary q and k are read (`qk_sources`), and whether a model's q/k norms come
before or after the rotary embedding.

Most models with q/k norms (Qwen3, Gemma 3, OLMo 2) normalize the projections' outputs and then
rotate: pre-rotary q and k are the norms' outputs. Some (Hunyuan V1) rotate first and normalize
the rotated q and k: the norms' outputs are what the attention scores read, and pre-rotary q and
k are the projections' outputs. The order is read from one forward of a few tokens: a norm whose
input is its projection's output (per head) comes before the rotation; one whose input differs
at later positions (where the rotation is not the identity) comes after it.
"""

from __future__ import annotations

import inspect

import torch
from torch import nn

from .._errors import UnsupportedModelError
from ._placement import child
from ._run_order import attention_probe, layout_of
from ._spec import Proj

__all__ = ["fused_qkv", "norms_after_rotary", "qk_sources", "rotated_qk_norms", "takes_q_and_k"]

#: (q norm, k norm) child names of an attention module, in order of preference
QK_NORMS = (
    ("q_norm", "k_norm"),
    ("q_layernorm", "k_layernorm"),
    ("query_layernorm", "key_layernorm"),
    ("qk_norm", "qk_norm"),  # one norm module called on q, then on k (Llama 4)
)


def rotated_qk_norms(model: nn.Module, attn_mod: nn.Module, attn: str) -> tuple[str, str] | None:
    """The paths (in the block) of q/k norms that `attn_mod` applies after the rotation, or None
    (no q/k norms, or norms before the rotation, or no separate q/k projections)."""
    names = {n for n, _ in attn_mod.named_children()}
    found = next((p for p in QK_NORMS if set(p) <= names), None)
    if found is None or not {"q_proj", "k_proj"} <= names:
        return None
    if not norms_after_rotary(model, attn_mod, [("q_proj", found[0]), ("k_proj", found[1])]):
        return None
    return f"{attn}.{found[0]}", f"{attn}.{found[1]}"


def norms_after_rotary(model: nn.Module, attn_mod: nn.Module, pairs: list[tuple[str, str]]) -> bool:
    """Whether each (projection, norm) of `pairs` (children of `attn_mod`, block 0's attention)
    normalizes something other than the projection's output: the rotated q or k. Raises
    UnsupportedModelError when the pairs disagree."""
    probe = attention_probe(model, attn_mod)  # shared with the q/k layouts' reading
    seen, calls, outputs = probe["outputs"], probe["inputs"], probe["outputs"]
    after = set()
    between: dict[str, str] = {}  # a norm that reads another child's output: that child
    for j, (proj, norm) in enumerate(pairs):
        nth = sum(n == norm for _, n in pairs[:j])  # this pair's call of a shared norm
        if proj not in seen or len(calls.get(norm, ())) <= nth:  # not called as modules: as
            return False  # before the rotation
        out, normed = seen[proj].float(), calls[norm][nth].float()
        if normed.ndim == 4 and normed.shape[1] != out.shape[1]:  # (batch, heads, pos, d_head)
            normed = normed.transpose(1, 2)
        if normed.ndim == 4 and normed.numel() < out.numel():  # a q projection that also holds
            # each head's gate after its queries (Qwen3-Next)
            out = out.reshape(*normed.shape[:3], -1)[..., : normed.shape[3]]
        differs = normed.numel() != out.numel() or not _same(normed, out)
        after.add(differs)
        step = next((n for n, o in outputs.items() if differs and _same(normed, o)), None)
        if step is not None and step not in (proj, norm):
            kind = type(attn_mod.get_submodule(step)).__name__
            between[norm] = f"{norm} reads the output of {step} ({kind}) on {proj}'s"
            if _mixes_positions(attn_mod.get_submodule(step)):
                between[norm] += MSG_CONV.format(step=step)
    if len(after) > 1:
        where = "; ".join(between.values()) or "the other reads the rotated q or k"
        raise UnsupportedModelError(MSG_APART.format(where=where))
    return after.pop()


MSG_APART = (
    "its q norm and k norm sit at different places: one reads its projection's output, the "
    "other something computed from it ({where}), so hook_q and hook_k would not be the same "
    "step of the computation (and ln1.hook_normalized @ W_K would not be hook_k)"
)


MSG_CONV = (
    ", a convolution over positions: each key mixes the projections of earlier positions, so "
    "no key is a projection of ln1.hook_normalized at its own position, and partial forwards, "
    "which reuse a prefix's keys and values, would lack {step}'s state"
)


def _mixes_positions(module: nn.Module) -> bool:
    """Whether `module` holds a convolution (over positions, in a causal LM's attention)."""
    return any(isinstance(m, nn.Conv1d) for m in module.modules())


def _same(normed: torch.Tensor, out: torch.Tensor) -> bool:
    """Whether a norm's input is `out`, per head or flat (heads and positions in either order)."""
    normed, out = normed.float(), out.float()
    if normed.numel() != out.numel():
        return False
    if normed.ndim == 4 and out.ndim == 3 and normed.shape[1] != out.shape[1]:
        normed = normed.transpose(1, 2)
    return torch.allclose(normed.reshape(out.shape), out, atol=1e-5, rtol=1e-4)


def fused_qkv(attn_mod: nn.Module) -> bool:
    """Whether `attn_mod` projects q, k and v with one module (`qkv_proj`, a linear layer or a
    wrapper of one; not a module of that name that computes them with projections of its own,
    ZAYA's convolving one)."""
    qkv = getattr(attn_mod, "qkv_proj", None)
    if not isinstance(qkv, nn.Module) or child(attn_mod, ("q_proj",)):
        return False
    return child(qkv, ("q_proj", "k_proj")) is None


def takes_q_and_k(module: object) -> bool:
    """Whether `module` is a norm called with q and k together (two tensor arguments: ZAYA's
    `qk_norm`), not once on each (Llama 4's)."""
    if not isinstance(module, nn.Module):
        return False
    params = inspect.signature(module.forward).parameters.values()
    return sum(p.default is inspect.Parameter.empty for p in params) == 2


def qk_sources(
    model: nn.Module, attn_mod: nn.Module, attn: str, norms: bool = True
) -> tuple[Proj, Proj] | str:
    """Where pre-rotary q and k are read: the q/k norms when present (and `norms`: they come
    before the rotation), else the projections; or why they cannot be read."""
    fused = fused_qkv(attn_mod)
    if not fused and not all(child(attn_mod, (n,)) for n in ("q_proj", "k_proj", "v_proj")):
        own = getattr(attn_mod, "qkv_proj", None)
        if isinstance(own, nn.Module) and takes_q_and_k(getattr(attn_mod, "qk_norm", None)):
            # a module computing q, k and v itself (ZAYA's convolving projection), then one
            # norm taking and returning (q, k) per head: pre-rotary q and k are its output
            return (Proj(f"{attn}.qk_norm", "tuple_bphd"),) * 2
        if isinstance(own, nn.Module):
            return (
                f"its attention's qkv_proj is a {type(own).__name__}, which computes q, k and v "
                f"itself ({', '.join(n for n, _ in own.named_children())}), not one linear "
                "layer whose output hooklens can split"
            )
        names = ", ".join(n for n, _ in attn_mod.named_children())
        return f"its attention {type(attn_mod).__name__} has no q/k/v ({names})"
    # a fused projection's q and k, normalized per head after the split (Ergo), are the norms'
    q_name = (child(attn_mod, ("q_norm", "q_layernorm")) if norms else None) or "q_proj"
    k_name = (child(attn_mod, ("k_norm", "k_layernorm")) if norms else None) or "k_proj"
    if fused and (q_name == "q_proj" or k_name == "k_proj"):
        return (Proj(f"{attn}.qkv_proj", "concat_qkv"),) * 2
    if q_name == "q_proj" and k_name == "k_proj":
        return Proj(f"{attn}.q_proj"), Proj(f"{attn}.k_proj")
    # the same module instance in every block: probe block 0's
    probe = attention_probe(model, attn_mod)
    shapes = {k: tuple(t.shape) for k, t in probe["outputs"].items()}
    q_layout = layout_of(shapes.get(q_name), probe["n_pos"])
    k_layout = layout_of(shapes.get(k_name), probe["n_pos"])
    if q_layout is None or k_layout is None:
        return f"cannot tell the layout of {q_name}/{k_name} outputs {shapes.get(q_name)}"
    return Proj(f"{attn}.{q_name}", q_layout), Proj(f"{attn}.{k_name}", k_layout)
