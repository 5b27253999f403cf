"""An indexer's key selection (Dots3 Note's indexed attention) reaches hooklens's attention."""

from __future__ import annotations

import torch

from hooklens._engine.selected_keys import select_keys


def test_select_keys_joins_the_causal_mask():
    indices = torch.tensor([[[0, 0], [0, 1], [0, 2], [1, 3]]])  # (batch, q, top_k)
    mask = select_keys(None, indices, 4, 4)
    want = torch.tensor([[1, 0, 0, 0], [1, 1, 0, 0], [1, 0, 1, 0], [0, 1, 0, 1]], dtype=torch.bool)
    assert torch.equal(mask[0, 0], want)
    additive = torch.zeros(1, 1, 4, 4)
    lowest = torch.finfo(additive.dtype).min
    assert torch.equal(select_keys(additive, indices, 4, 4)[0, 0] == lowest, ~want)


def test_indexed_attention_attends_only_to_selected_keys(registry):
    """The registry's Dots3 Note selects 3 keys per query: with hooklens's points attached,
    each pattern row has at most 3 keys (the model's logits are matched by the registry test)."""
    _, model = registry("dots3_note_text")
    assert model is not None
    tokens = torch.tensor([[5, 9, 17, 33, 41, 60, 7]])
    with torch.no_grad():
        _, cache = model.run_with_cache(tokens, names_filter=lambda n: "hook_pattern" in n)
    for layer in range(model.cfg.n_layers):
        pattern = cache[f"blocks.{layer}.attn.hook_pattern"]
        assert int((pattern > 0).sum(-1).max()) == 3
