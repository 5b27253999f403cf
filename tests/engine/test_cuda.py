"""On a CUDA device, in float32 and bfloat16: a wrapped model (derived there: the load check runs
on the device) gives HF's logits with every point attached, patterns sum to 1, and the cache
stays on the device. Skipped where no CUDA device is present."""

from __future__ import annotations

import pytest
import torch

import hooklens as hl

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")

#: explicit and derived adapters, attention through transformers' registry and hooklens's own
#: reimplementations (BLOOM, Falcon, GPT-Neo), mixtures, sinks, soft-capping and hybrids
TYPES = ("llama", "gpt2", "gpt_neox", "gemma2", "bloom", "falcon", "gpt_neo", "qwen3_moe",
         "gpt_oss", "olmo2", "phi", "jamba", "falcon_h1", "mamba")  # fmt: skip


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("model_type", TYPES)
def test_wrapped_on_cuda(model_type, dtype):
    import transformers as tf

    from hooklens.architectures._registry import VOCAB, tiny_config

    torch.manual_seed(0)
    hf = tf.AutoModelForCausalLM.from_config(tiny_config(model_type)).eval()
    hf.to("cuda", dtype)
    tokens = torch.randint(4, VOCAB, (2, 8), device="cuda")
    model = hl.HookedModel(hf)
    with torch.no_grad():
        ref = hf(tokens).logits
        torch.testing.assert_close(model(tokens), ref, atol=0, rtol=0)  # no points: HF's path
        logits, cache = model.run_with_cache(tokens)
        hf.float()
        try:
            full = hf(tokens).logits  # float32: how far each half-precision run strays
        finally:
            hf.to(dtype)
    assert logits.device.type == "cuda"
    assert all(t.device.type == "cuda" for t in cache.values())
    if dtype == torch.float32:
        torch.testing.assert_close(logits, ref, atol=1e-4, rtol=1e-4)
    else:  # ours strays from float32 no further than HF's own half-precision run
        ours, theirs = (logits.float() - full).abs().max(), (ref.float() - full).abs().max()
        assert ours <= 2 * theirs + 1e-2, (ours, theirs)
    patterns = [t for n, t in cache.items() if n.endswith("hook_pattern")]
    assert patterns or model_type == "mamba"
    for pattern in patterns:
        sums = pattern.float().sum(-1)
        torch.testing.assert_close(sums, torch.ones_like(sums), atol=2e-2, rtol=0)
