"""The numbers behind the head map and the logit attribution view.

Head scores from attention patterns ``(n_layers, n_heads, q, k)`` of one prompt, and direct
logit attribution (DLA) per head and per layer from the cache of one forward, through the
engine's TransformerLens-style ``stack_head_results`` / ``decompose_resid`` / ``logit_attrs``
(the final norm applied linearly with the cached scale, as TransformerLens does).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

#: Score kinds computed from patterns alone; "dla" also needs an answer pair.
PATTERN_SCORES = ("first_token", "previous_token", "induction")


def pattern_scores(patterns: np.ndarray, ids: list[int]) -> dict[str, np.ndarray]:
    """Per-head scores, each float32 ``(n_layers, n_heads)``, from ``patterns``
    ``(n_layers, n_heads, n, n)`` of the prompt ``ids`` (``n`` of them):

    - ``first_token``: mean over queries 1..n-1 of the attention to key 0;
    - ``previous_token``: mean over queries 1..n-1 of the attention to key q-1;
    - ``induction``: mean over queries whose token occurred before of the attention to the key
      just after its latest earlier occurrence (NaN when no token repeats).
    """
    n = patterns.shape[-1]
    p = patterns.astype(np.float32)
    if n < 2:
        nan = np.full(p.shape[:2], np.nan, np.float32)
        return {"first_token": nan, "previous_token": nan, "induction": nan}
    queries = np.arange(1, n)
    first = p[:, :, 1:, 0].mean(-1)
    previous = p[:, :, queries, queries - 1].mean(-1)
    last_seen: dict[int, int] = {}
    pairs: list[tuple[int, int]] = []
    for q, token in enumerate(ids):
        if token in last_seen:
            pairs.append((q, last_seen[token] + 1))
        last_seen[token] = q
    if pairs:
        qs, ks = np.array(pairs).T
        induction = p[:, :, qs, ks].mean(-1)
    else:
        induction = np.full(p.shape[:2], np.nan, np.float32)
    return {
        "first_token": first.astype(np.float32),
        "previous_token": previous.astype(np.float32),
        "induction": induction.astype(np.float32),
    }


def head_logit_attribution(cache: Any, answer: Any, wrong: Any) -> np.ndarray:
    """Each head's direct contribution to ``logit[answer] - logit[wrong]`` at the last position:
    float32 ``(n_layers, n_heads)`` (a hybrid's rows: the layers that attend).

    ``cache``: an ``ActivationCache`` of one prompt (batch of one). Per-head outputs are the
    engine's ``blocks.{l}.attn.hook_result`` (``z @ W_O`` per head, ``stack_head_results``), put
    through the final norm's cached scale and the unembedding (``logit_attrs``).
    """
    stack = cache.stack_head_results(layer=-1, pos_slice=-1)
    attrs = cache.logit_attrs(stack, answer, wrong, pos_slice=-1)  # (layers * heads, 1)
    n_heads = cache.model.cfg.n_heads
    return attrs[:, 0].reshape(-1, n_heads).detach().to("cpu", torch.float32).numpy()


def layer_logit_attribution(cache: Any, answer: Any, wrong: Any) -> tuple[list[str], np.ndarray]:
    """The embeddings' and each layer's attention and MLP direct contribution to
    ``logit[answer] - logit[wrong]`` at the last position: labels and float32 ``(components,)``
    (``embed``, ``L0 attn``, ``L0 mlp``, ...)."""
    stack, labels = cache.decompose_resid(layer=-1, pos_slice=-1, return_labels=True)
    attrs = cache.logit_attrs(stack, answer, wrong, pos_slice=-1)[:, 0]
    names = [_component_label(label) for label in labels]
    return names, attrs.detach().to("cpu", torch.float32).numpy()


def _component_label(label: str) -> str:
    """``"3_attn_out"`` -> ``"L3 attn"``; ``"embed"`` stays."""
    layer, _, rest = label.partition("_")
    if layer.isdigit():
        return f"L{layer} {rest.removesuffix('_out')}"
    return label
