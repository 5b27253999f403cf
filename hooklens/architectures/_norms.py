"""What a norm module computes, read from the module itself: its epsilon, and whether it is an
RMSNorm or a LayerNorm (and whether its weight is applied as `w` or `1 + w`)."""

from __future__ import annotations

import torch
from torch import nn

from .._errors import UnsupportedModelError


def norm_eps(module: nn.Module) -> float:
    """A norm module's epsilon, whatever its attribute is called."""
    for attr in ("eps", "variance_epsilon", "epsilon"):
        value = getattr(module, attr, None)
        if isinstance(value, float | int):
            return float(value)
    return 1e-5


def shared_norm_kind(
    model: nn.Module, norms: list[nn.Module], width: int, like: torch.Tensor
) -> tuple[str, float]:
    """The one `norm_kind` every module of `norms` computes; UnsupportedModelError naming the
    kinds when they differ (an adapter has one norm type)."""
    kinds = {norm_kind(m, norm_eps(m), width, like) for m in norms}
    if len(kinds) > 1:
        raise UnsupportedModelError(
            f"{type(model).__name__}'s norms compute different things ({sorted(kinds)})"
        )
    return kinds.pop()


def norm_kind(module: nn.Module, eps: float, width: int, like: torch.Tensor) -> tuple[str, float]:
    """("rmsnorm" | "layernorm", weight offset) read from what `module` computes on a probe of
    `width` features (device and dtype of `like`, for norms without a weight)."""
    weight = getattr(module, "weight", None)
    if isinstance(weight, torch.Tensor):
        like, width = weight, weight.shape[-1]
    if like.device.type == "meta":
        raise UnsupportedModelError(f"{type(module).__name__} has no materialized weight")
    gen = torch.Generator().manual_seed(0)
    x = (torch.randn(3, width, generator=gen) * 2 + 0.5).to(like.device, like.dtype)
    with torch.no_grad():
        y = module(x).float()
    xf = x.float()
    w = weight.float() if isinstance(weight, torch.Tensor) else torch.ones_like(xf[0])
    bias = getattr(module, "bias", None)
    b = bias.float() if isinstance(bias, torch.Tensor) else 0.0
    rms = xf / (xf.pow(2).mean(-1, keepdim=True) + eps).sqrt()
    centred = xf - xf.mean(-1, keepdim=True)
    ln = centred / (centred.pow(2).mean(-1, keepdim=True) + eps).sqrt()
    tol = 1e-4 if like.dtype == torch.float32 else 3e-2
    for kind, normed in (("rmsnorm", rms), ("layernorm", ln)):
        for offset in (0.0, 1.0):
            pred = normed * (w + offset) + b
            if (pred - y).abs().max() <= tol * (1 + y.abs().max()):
                return kind, offset
    raise UnsupportedModelError(
        f"{type(module).__name__} computes neither an RMSNorm nor a LayerNorm (x * w or "
        "x * (1 + w), with its bias)"
    )
