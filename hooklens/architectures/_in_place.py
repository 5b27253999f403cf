"""Which module outputs a model edits in place after returning them, read from one forward.

GIT's embeddings add the positions into the word embedding's output tensor itself
(`embeddings += position_embeddings`); Falcon's blocks add attention's output into the MLP's.
A point on such an output would be changed after it fired (a cached `hook_embed` would hold the
sum), so it hands the model a copy (`ArchSpec.edited_in_place`).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from ._run_order import probe_forward


def edited_in_place(
    model: nn.Module, modules: dict[str, nn.Module], stop_after: nn.Module | None = None
) -> tuple[str, ...]:
    """The point suffixes (keys of `modules`) whose module's output tensor the model changes in
    place later in a forward of a few tokens (up to `stop_after`'s return: `probe_forward`)."""
    seen: dict[str, tuple[torch.Tensor, int]] = {}

    def keep(suffix: str) -> Any:
        def hook(module: nn.Module, args: Any, out: Any) -> None:
            t = out[0] if isinstance(out, tuple) else out
            if isinstance(t, torch.Tensor) and suffix not in seen:
                seen[suffix] = (t, t._version)

        return hook

    probe_forward(model, [m.register_forward_hook(keep(s)) for s, m in modules.items()], stop_after)
    return tuple(s for s, (t, version) in seen.items() if t._version != version)
