"""Embedding parts a model computes outside any module: CTRL's token embedding factor
sqrt(d_model) is in `hook_embed` and W_E, and the sinusoidal positions it adds from a table
(a buffer) are `hook_pos_embed`, W_pos, and editable like a position module's output; a
config factor on the embedding (Falcon-H1's) is in W_E as in `hook_embed`."""

from __future__ import annotations

import math

import torch

TOKENS = torch.tensor([[5, 9, 17, 33, 40], [7, 8, 9, 10, 11]])


def _ctrl(registry):
    _, model = registry("ctrl")
    assert model is not None and model.spec.pos_table is not None
    return model


def test_embed_and_positions_are_the_stream_entering_block_0(registry):
    model = _ctrl(registry)
    hf = model.hf_model.transformer
    with torch.no_grad():
        _, cache = model.run_with_cache(TOKENS)
    raw = hf.w(TOKENS) * math.sqrt(model.cfg.d_model)
    torch.testing.assert_close(cache["hook_embed"], raw)
    torch.testing.assert_close(model.W_E[TOKENS], raw)
    rows = hf.pos_encoding[: TOKENS.shape[1]]
    torch.testing.assert_close(cache["hook_pos_embed"], rows.expand(2, -1, -1))
    torch.testing.assert_close(model.W_pos[: TOKENS.shape[1]], rows)
    torch.testing.assert_close(
        cache["hook_embed"] + cache["hook_pos_embed"], cache["blocks.0.hook_resid_pre"]
    )


def test_edit_of_positions_reaches_the_stream(registry):
    """Zeroing hook_pos_embed at one position equals taking its row off block 0's input."""
    model = _ctrl(registry)
    hf = model.hf_model
    rows = hf.transformer.pos_encoding[: TOKENS.shape[1]]

    def zero_pos(x, hook):
        x[:, 2] = 0

    def raw(mod, args):
        x = args[0].clone()
        x[:, 2] -= rows[2]
        return (x,)

    with torch.no_grad():
        ours = model.run_with_hooks(TOKENS, fwd_hooks=[("hook_pos_embed", zero_pos)])
        handle = hf.transformer.h[0].register_forward_pre_hook(raw)
        try:
            want = hf(TOKENS).logits
        finally:
            handle.remove()
        base = model(TOKENS)
    assert (ours - base).abs().max() > 1e-3
    torch.testing.assert_close(ours, want)


def test_positions_continue_after_the_key_value_cache(registry):
    """With the KV cache, each generated step's hook_pos_embed is the row of its position."""
    model = _ctrl(registry)
    table = model.hf_model.transformer.pos_encoding
    seen: list[torch.Tensor] = []
    model.generate(
        TOKENS[:1],
        max_new_tokens=3,
        do_sample=False,
        stop_at_eos=False,
        fwd_hooks=[("hook_pos_embed", lambda x, hook: seen.append(x.clone()))],
    )
    assert [s.shape[1] for s in seen] == [5, 1, 1]
    for step, rows in enumerate(seen[1:]):
        torch.testing.assert_close(rows[0, 0], table[5 + step])


def test_w_e_includes_the_config_factor_on_the_embedding(registry):
    """Falcon-H1 multiplies the token embedding by its config's embedding_multiplier (1.5 in
    the registry's tiny model) outside the module: W_E[tokens] is hook_embed all the same."""
    _, model = registry("falcon_h1")
    assert model is not None and model.spec.embed_scale is not None
    with torch.no_grad():
        _, cache = model.run_with_cache(TOKENS, names_filter="hook_embed")
    raw = model.hf_model.get_input_embeddings()(TOKENS)
    assert (cache["hook_embed"] - raw).abs().max() > 1e-3  # the factor is not 1
    torch.testing.assert_close(model.W_E[TOKENS], cache["hook_embed"])
