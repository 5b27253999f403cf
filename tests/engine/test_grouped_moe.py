"""JetMoE: attention kept whole (a mixture of attention heads), and a mixture of experts whose
router groups its choices by expert (`_engine/grouped_moe.py`)."""

from __future__ import annotations

import pytest
import torch

import hooklens as hl

TOKENS = torch.tensor([[5, 9, 17, 33, 8, 21]])


def test_mixture_of_attention_heads_is_kept_whole(registry):
    """JetMoE's attention fills its query heads from routed experts, so a head index is a
    routing slot: the module is kept whole, as its layer's mixer, and its points say why."""
    _, model = registry("jetmoe")
    assert model is not None and model.spec.derived
    assert all(lay.kind == "mixer" and lay.opaque for lay in model.spec.layers or ())
    with pytest.raises(hl.HookNameError) as info:
        model.run_with_cache(TOKENS, names_filter="blocks.0.attn.hook_pattern")
    assert "JetMoeAttention is a mixture of attention heads" in str(info.value)
    assert "routing slot" in str(info.value)


def test_forced_choices_run_the_chosen_expert(registry):
    """Editing hook_expert_indices and hook_expert_weights regroups the tokens as the router
    would: every token sent to expert 1 alone gives that expert's output (computed here from
    its weights) plus the MoE's bias as hook_mlp_out."""
    _, model = registry("jetmoe")
    mlp = model.hf_model.model.layers[0].mlp
    b = "blocks.0."

    def to_expert_1(index, hook):
        return torch.ones_like(index)

    def all_on_first(weights, hook):
        weights = torch.zeros_like(weights)
        weights[..., 0] = 1
        return weights

    edits = [(b + "mlp.hook_expert_indices", to_expert_1),
             (b + "mlp.hook_expert_weights", all_on_first)]  # fmt: skip
    with torch.no_grad(), model.hooks(fwd_hooks=edits):
        _, cache = model.run_with_cache(
            TOKENS, names_filter=[b + "ln2.hook_normalized", b + "hook_mlp_out"]
        )
        x = cache[b + "ln2.hook_normalized"]
        gate, up = (x @ mlp.input_linear.weight[1].T).chunk(2, dim=-1)
        want = (mlp.activation(gate) * up) @ mlp.output_linear.weight[1].T + mlp.bias
    torch.testing.assert_close(cache[b + "hook_mlp_out"], want, atol=1e-5, rtol=1e-4)
