"""The analysis toolkit on the real SmolLM2-135M (GQA: 9 query heads, 3 key/value heads)."""

from __future__ import annotations

import torch

from hooklens.analysis import composition_scores

PROMPT = "When Mary and John went to the store, John gave a drink to"


def _close(a, b, tol=1e-3):
    torch.testing.assert_close(a, b, atol=tol, rtol=tol)


def test_weights_reproduce_activations(smollm2):
    model = smollm2
    tokens = model.to_tokens(PROMPT)
    logits, cache = model.run_with_cache(
        tokens, names_filter=lambda n: "blocks.3." in n or "ln_final" in n
    )
    assert model.W_K.shape == (30, 9, 576, 64) and model.weights.layer(3)._W_K.shape == (3, 576, 64)
    w = model.weights.layer(3)
    x = cache["blocks.3.ln1.hook_normalized"]
    _close(torch.einsum("bpd,hde->bphe", x, w.W_Q) + w.b_Q, cache["blocks.3.attn.hook_q"])
    _close(torch.einsum("bpd,hde->bphe", x, w._W_K), cache["blocks.3.attn.hook_k"])
    z = cache["blocks.3.attn.hook_z"]
    _close(torch.einsum("bphe,hed->bpd", z, w.W_O), cache["blocks.3.hook_attn_out"])
    _close(cache["blocks.3.mlp.hook_post"] @ w.W_out, cache["blocks.3.hook_mlp_out"])
    _close(cache["ln_final.hook_normalized"] @ model.W_U, logits)
    # tied embeddings: W_U is a view of W_E's storage, nothing was copied
    assert model.W_U.untyped_storage().data_ptr() == model.W_E.untyped_storage().data_ptr()
    # fold_ln: RMSPre input (stream / scale) through the folded W_Q gives hook_q again
    p = model.processed_weights(fold_ln=True)
    pre = cache["blocks.3.hook_resid_pre"] / cache["blocks.3.ln1.hook_scale"]
    _close(torch.einsum("bpd,hde->bphe", pre, p.W_Q[3]) + p.b_Q[3], cache["blocks.3.attn.hook_q"])


def test_head_results_and_decomposition(smollm2):
    model = smollm2
    tokens = model.to_tokens(PROMPT)
    with torch.no_grad():
        _, cache = model.run_with_cache(
            tokens,
            names_filter=lambda n: (
                n == "hook_embed"
                or n.endswith(("hook_z", "hook_resid_pre", "mlp_out", "ln_final.hook_scale"))
                or n == "blocks.29.hook_resid_post"
                or n == "blocks.5.attn.hook_result"
            ),
        )
    stack, labels = cache.get_full_resid_decomposition(
        6, expand_neurons=False, pos_slice=-1, return_labels=True
    )
    assert len(labels) == 6 * 9 + 6 + 2 and labels[-2:] == ["embed", "bias"]
    _close(stack.sum(0), cache["blocks.6.hook_resid_pre"][:, -1])
    heads = cache.stack_head_results(6)
    _close(heads[5 * 9 : 6 * 9].movedim(0, -2), cache["blocks.5.attn.hook_result"])
    # logit attribution of every head to " Mary" - " John" at the last position
    mary, john = model.to_single_token(" Mary"), model.to_single_token(" John")
    final = cache.stack_head_results(pos_slice=-1, incl_remainder=True)
    attrs = cache.logit_attrs(final, mary, incorrect_tokens=john, pos_slice=-1)
    assert attrs.shape == (30 * 9 + 1, 1)
    full = cache.logit_attrs(cache["blocks.29.hook_resid_post"][None, :, -1], mary, john, -1)
    _close(attrs.sum(0), full[0])
    # K-composition of layer 0-1 heads into layer 2-3 heads (all 30 x 9 pairs of pairs work too,
    # at ~350 GFLOP, as in TransformerLens)
    scores = composition_scores(model.OV[0:2], model.QK.T[2:4])
    assert scores.shape == (2, 9, 2, 9) and bool(((scores > 0) & (scores < 1)).all())
    a, b = model.OV[1, 4].AB, model.QK[3, 7].AB.T
    _close(scores[1, 4, 1, 7], (a @ b).norm() / (a.norm() * b.norm()))
