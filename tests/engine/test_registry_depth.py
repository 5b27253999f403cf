"""Every wrapped registry type again at a realistic depth: its tiny config with 8 layers.

The family test builds 2-layer models, where structure a config places by layer index stays
out of sight (Mllama's cross-attention layers from layer 3, RWKV's halving of the stream every
6 blocks, a per-layer config for layers 25 and up). Here each type that the family test wraps
is built with 8 layers (per-layer kind lists repeated, `tiny_config`) and wrapped again: it
must match its own forward, or be refused for a reason only depth brings, listed below.
"""

from __future__ import annotations

import warnings

import pytest
import torch
import transformers as tf

import hooklens as hl
from hooklens.architectures._registry import causal_lm_types, tiny_config

DEPTH = 8
DEEP = {"num_hidden_layers": DEPTH, "n_layer": DEPTH, "num_layers": DEPTH, "decoder_layers": DEPTH}
#: type -> words of the refusal that depth brings (the 2-layer model is wrapped)
REFUSED_WHEN_DEEP = {
    "rwkv": "halves the residual stream between blocks every 6 layers",
    "dots3_note_text": "its config gives some layers their own",  # its per_layer_config
}


@pytest.mark.parametrize("model_type", list(causal_lm_types()))
def test_registry_type_at_depth(registry, model_type):
    outcome, shallow = registry(model_type)
    if shallow is None:
        pytest.skip(f"not wrapped at 2 layers: {outcome.status}")
    try:
        torch.manual_seed(0)
        hf = tf.AutoModelForCausalLM.from_config(tiny_config(model_type, DEEP)).eval()
        tokens = torch.randint(4, 100, (1, 6), generator=torch.Generator().manual_seed(2))
        with torch.no_grad():
            ref = hf(tokens, use_cache=False).logits
    except Exception as exc:  # the model's own code refuses this depth (its validation)
        pytest.skip(f"cannot run at {DEPTH} layers: {type(exc).__name__}: {exc}"[:200])
    if model_type in REFUSED_WHEN_DEEP:
        with pytest.raises(hl.UnsupportedModelError, match=REFUSED_WHEN_DEEP[model_type]):
            hl.HookedModel(hf)
        return
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = hl.HookedModel(hf)  # derived adapters are checked against the forward here
    assert model.cfg.n_layers == len(hf.get_submodule(model.spec.blocks))
    with torch.no_grad():
        logits, cache = model.run_with_cache(tokens)
    torch.testing.assert_close(logits, ref, atol=1e-4, rtol=1e-4)
    last = model.cfg.n_layers - 1
    # several parallel streams (Gemma 3n): no point on them, the blocks' parts have theirs
    point = "hook_resid_post" if model.spec.streams is None else "ln1.hook_normalized"
    assert f"blocks.{last}.{point}" in cache
