"""Multi-head latent attention (DeepSeek V3's, with its interleaved rotation): q/k widths differ
from v's, pre-rotary q/k are found as data, and edits of hook_q / hook_k act like raw edits of
the modules they are read from."""

from __future__ import annotations

import pytest
import torch

import hooklens as hl
from hooklens.architectures._registry import VOCAB, build, load

from .conftest import _tokenizer


@pytest.fixture(scope="module")
def mla(tmp_path_factory):
    folder = tmp_path_factory.mktemp("mla") / "deepseek_v3"
    assert build("deepseek_v3", folder) is None
    outcome, model = load("deepseek_v3", folder, _tokenizer())
    assert model is not None, outcome.reason
    return model


TOKENS = torch.randint(4, VOCAB, (2, 6), generator=torch.Generator().manual_seed(5))


def test_widths_and_sources(mla):
    c, latent = mla.cfg, mla.spec.latent_kv
    assert latent is not None and latent.interleaved  # DeepSeek V3 rotates adjacent pairs
    assert (c.d_head, c.d_head_qk) == (latent.v, latent.nope + latent.rope)
    assert c.d_head != c.d_head_qk and c.n_kv_heads == c.n_heads
    assert c.rotary_dim == latent.rope
    _, cache = mla.run_with_cache(TOKENS)
    assert cache["blocks.0.attn.hook_q"].shape == (2, 6, c.n_heads, c.d_head_qk)
    assert cache["blocks.0.attn.hook_k"].shape == (2, 6, c.n_heads, c.d_head_qk)
    assert cache["blocks.0.attn.hook_v"].shape == (2, 6, c.n_heads, c.d_head)
    assert cache["blocks.0.attn.hook_z"].shape == (2, 6, c.n_heads, c.d_head)
    # the rotated key part is shared by every head; the rest differs per head
    k = cache["blocks.1.attn.hook_k"]
    assert torch.equal(
        k[..., latent.nope :], k[:, :, :1, latent.nope :].expand_as(k[..., latent.nope :])
    )
    assert not torch.allclose(k[:, :, 0, : latent.nope], k[:, :, 1, : latent.nope])


def _raw(model, path, edit):
    module = model.hf_model.get_submodule(f"{model.spec.blocks}.0.{path}")
    handle = module.register_forward_hook(lambda m, a, out: edit(out.clone()))
    try:
        with torch.no_grad():
            return model.hf_model(TOKENS).logits
    finally:
        handle.remove()


def test_q_edit_is_a_raw_edit_of_its_projection(mla):
    c, latent = mla.cfg, mla.spec.latent_kv
    width = latent.nope + latent.rope

    def ours(q, hook):
        q[:, :, 1, : latent.nope] *= 3.0

    def raw(out):
        out.view(*out.shape[:-1], c.n_heads, width)[:, :, 1, : latent.nope] *= 3.0
        return out

    with torch.no_grad():
        base = mla.hf_model(TOKENS).logits
        got = mla.run_with_hooks(TOKENS, fwd_hooks=[("blocks.0.attn.hook_q", ours)])
    assert (got - base).abs().max() > 1e-3
    torch.testing.assert_close(got, _raw(mla, latent.q, raw), atol=1e-5, rtol=1e-4)


def test_q_rotated_part_is_in_the_rotation_order(mla):
    """Zeroing the first half of the rotated part of q is zeroing its even features."""
    c, latent = mla.cfg, mla.spec.latent_kv
    width, half = latent.nope + latent.rope, latent.rope // 2

    def ours(q, hook):
        q[..., latent.nope : latent.nope + half] = 0

    def raw(out):
        out.view(*out.shape[:-1], c.n_heads, width)[..., latent.nope :: 2] = 0
        return out

    with torch.no_grad():
        got = mla.run_with_hooks(TOKENS, fwd_hooks=[("blocks.0.attn.hook_q", ours)])
    torch.testing.assert_close(got, _raw(mla, latent.q, raw), atol=1e-5, rtol=1e-4)


def test_k_edit_is_a_raw_edit_of_the_latent_expansion(mla):
    c, latent = mla.cfg, mla.spec.latent_kv

    def ours(k, hook):
        k[:, :, 2, : latent.nope] = 0

    def raw(out):
        out.view(*out.shape[:-1], c.n_heads, latent.nope + latent.v)[..., 2, : latent.nope] = 0
        return out

    with torch.no_grad():
        base = mla.hf_model(TOKENS).logits
        got = mla.run_with_hooks(TOKENS, fwd_hooks=[("blocks.0.attn.hook_k", ours)])
    assert (got - base).abs().max() > 1e-3
    torch.testing.assert_close(got, _raw(mla, latent.kv_b, raw), atol=1e-5, rtol=1e-4)


def test_editing_the_shared_rotated_key_part_raises(mla):
    latent = mla.spec.latent_kv

    def zero_head(k, hook):
        k[:, :, 1] = 0

    with pytest.raises(hl.HookError, match="shared by every head"):
        mla.run_with_hooks(TOKENS, fwd_hooks=[("blocks.0.attn.hook_k", zero_head)])
    # the model is left as it was
    with torch.no_grad():
        torch.testing.assert_close(mla(TOKENS), mla.hf_model(TOKENS).logits)
    assert latent is not None
