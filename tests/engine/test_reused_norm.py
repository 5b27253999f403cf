"""A final norm the model also applies to the embedding before block 0 (NanoChat's `norm`,
called before the layers and after them): block 0's stream is that norm of `hook_embed`, and
the `ln_final` points are its last call only, which their edits reach alone."""

from __future__ import annotations

import torch

TOKENS = torch.tensor([[5, 9, 17, 33, 40], [7, 8, 9, 10, 11]])


def test_ln_final_is_the_last_call_of_a_norm_called_twice(registry):
    _, model = registry("nanochat")
    assert model is not None and model.spec.embed_sum_norm == model.spec.final_norm
    hf = model.hf_model
    norm = hf.get_submodule(model.spec.final_norm)
    last = f"blocks.{model.cfg.n_layers - 1}.hook_resid_post"
    with torch.no_grad():
        _, cache = model.run_with_cache(TOKENS)
        torch.testing.assert_close(cache["blocks.0.hook_resid_pre"], norm(cache["hook_embed"]))
        torch.testing.assert_close(cache["ln_final.hook_normalized"], norm(cache[last]))

        def double(x, hook):
            return x * 2

        calls: list[int] = []

        def raw(mod, args, out):  # doubles the second call only
            calls.append(1)
            return out * 2 if len(calls) == 2 else None

        ours = model.run_with_hooks(TOKENS, fwd_hooks=[("ln_final.hook_normalized", double)])
        handle = norm.register_forward_hook(raw)
        try:
            want = hf(TOKENS).logits
        finally:
            handle.remove()
        base = model(TOKENS)
    assert len(calls) == 2
    assert (ours - base).abs().max() > 1e-3
    torch.testing.assert_close(ours, want)
