"""Rotary scaling that also scales the attention (YaRN: cos and sin times an attention factor)
on models that rotate part of each head: a partial rotary's first dims (Qwen3-Next, Phi, GLM)
and latent attention's rope part, the last dims (DeepSeek V3). At position 0 the rotation is
the identity, so `hook_rot_q` is `hook_q` with its rotated dims times the factor and the others
as they are; the check at load reads it so (it multiplied every dim and refused these models
with YaRN)."""

from __future__ import annotations

import pytest
import torch
import transformers as tf

import hooklens as hl
from hooklens.architectures._registry import tiny_config

TOKENS = torch.randint(4, 100, (1, 12), generator=torch.Generator().manual_seed(6))
YARN = {"rope_type": "yarn", "factor": 4.0, "original_max_position_embeddings": 16}


@pytest.mark.parametrize("model_type", ["qwen3_next", "phi", "glm", "deepseek_v3"])
def test_yarn_on_part_of_each_head(model_type):
    config = tiny_config(model_type)
    config.rope_parameters = {**config.rope_parameters, **YARN}
    torch.manual_seed(0)
    hf = tf.AutoModelForCausalLM.from_config(config).eval()
    model = hl.HookedModel(hf)
    c = model.cfg
    with torch.no_grad():
        ref = hf(TOKENS, use_cache=False).logits
        logits, cache = model.run_with_cache(TOKENS)
    torch.testing.assert_close(logits, ref)
    layer = model.spec.attention_layers(c.n_layers)[0]
    q = cache[f"blocks.{layer}.attn.hook_q"][:, 0]
    rot = cache[f"blocks.{layer}.attn.hook_rot_q"][:, 0]
    d, r = q.shape[-1], c.rotary_dim
    assert r < d  # part of each head rotates
    factor = next(m.attention_scaling for m in hf.modules() if hasattr(m, "attention_scaling"))
    assert factor > 1.1  # YaRN's factor at 4x: 0.1 * ln(4) + 1
    turned = slice(d - r, d) if model.spec.latent_kv is not None else slice(0, r)
    kept = slice(0, d - r) if model.spec.latent_kv is not None else slice(r, d)
    torch.testing.assert_close(rot[..., turned], q[..., turned] * factor)
    torch.testing.assert_close(rot[..., kept], q[..., kept])
