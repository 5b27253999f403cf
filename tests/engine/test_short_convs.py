"""Convolutions over positions around a block's parts (Inkling), and an additive score bias in
the attention function (transformers' `position_bias`).

Inkling convolves keys and values over positions before attention reads them, and what attention
and the MLP output before the block adds it; its attention adds a relative-position bias to the
scores, and on its full-attention layers scales queries (and the bias) by a log factor. hooklens
reads q/k/v where the attention function receives them, the parts' outputs after the
convolutions, and refuses what would need a head's or neuron's result at a position.
"""

from __future__ import annotations

import math

import pytest
import torch
from transformers.integrations.sdpa_attention import sdpa_attention_forward

import hooklens as hl
from hooklens._engine import attention
from hooklens._engine.attention import attention_forward, explicit_attention

from .conftest import assert_full_pass_sweep

TOKENS = torch.tensor([[5, 9, 17, 33, 8, 40, 41], [7, 7, 12, 90, 3, 64, 2]])
CONV = "a convolution over positions"


@pytest.fixture
def inkling(registry):
    outcome, model = registry("inkling_text")
    assert model is not None, outcome
    return model


def _blocks(model):
    return model.hf_model.get_submodule(model.spec.blocks)


def _run(model, tokens=TOKENS):
    with torch.no_grad():
        ref = model.hf_model(tokens, use_cache=False).logits
        logits, cache = model.run_with_cache(tokens)
    return ref, logits, cache


def test_every_point_keeps_the_logits_and_the_sums_hold(inkling):
    ref, logits, cache = _run(inkling)
    torch.testing.assert_close(logits, ref, atol=1e-5, rtol=1e-5)
    assert inkling.cfg.positional == "relative"
    assert dict(inkling.spec.convs) == {
        "k": "self_attn.k_sconv", "v": "self_attn.v_sconv", "attn_out": "attn_sconv",
        "mlp_out": "mlp_sconv",
    }  # fmt: skip
    for layer, block in enumerate(_blocks(inkling)):
        b = f"blocks.{layer}."
        pattern = cache[b + "attn.hook_pattern"]
        torch.testing.assert_close(pattern.sum(-1), torch.ones_like(pattern[..., 0]))
        rep = inkling.cfg.n_heads // inkling.cfg.layer(layer).n_kv_heads
        v = cache[b + "attn.hook_v"].repeat_interleave(rep, dim=2)
        torch.testing.assert_close(
            cache[b + "attn.hook_z"], torch.einsum("bhqk,bkhd->bqhd", pattern, v)
        )
        # hook_attn_out is what the block adds: attn_sconv of o_proj's output of z
        with torch.no_grad():
            out = block.attn_sconv(block.self_attn.o_proj(cache[b + "attn.hook_z"].flatten(-2)))
        torch.testing.assert_close(cache[b + "hook_attn_out"], out)
        mid = cache[b + "hook_resid_pre"] + cache[b + "hook_attn_out"]
        torch.testing.assert_close(mid, cache[b + "hook_resid_mid"])
        torch.testing.assert_close(mid + cache[b + "hook_mlp_out"], cache[b + "hook_resid_post"])


def _raw(model, module, hook, pre=False):
    """The model's logits with a raw torch hook on `module` (no hooklens point attached)."""
    register = module.register_forward_pre_hook if pre else module.register_forward_hook
    handle = register(hook)
    try:
        with torch.no_grad():
            return model.hf_model(TOKENS, use_cache=False).logits
    finally:
        handle.remove()


def _hooked(model, name, fn):
    with torch.no_grad():
        return model.run_with_hooks(TOKENS, fwd_hooks=[(name, fn)])


@pytest.mark.parametrize("layer", [0, 1])  # a sliding-window layer, a full one (log-scaled q)
def test_edits_equal_raw_torch_hooks(inkling, layer):
    """hook_z and hook_pattern (zeroing a head) act as o_proj's input would; hook_v is the
    value convolution's output and hook_k the k norm's, as edits there show."""
    block, head = _blocks(inkling)[layer], 1
    d = inkling.cfg.layer(layer).d_head

    def zero_z(args):
        z = args[0].clone()
        z[..., head * d : (head + 1) * d] = 0
        return (z,)

    raw = _raw(inkling, block.self_attn.o_proj, lambda m, a: zero_z(a), pre=True)

    def zero_head(x, hook):
        x[:, :, head] = 0
        return x

    torch.testing.assert_close(_hooked(inkling, f"blocks.{layer}.attn.hook_z", zero_head), raw)

    def zero_pattern(x, hook):
        x[:, head] = 0
        return x

    got = _hooked(inkling, f"blocks.{layer}.attn.hook_pattern", zero_pattern)
    torch.testing.assert_close(got, raw)
    # a value head doubled from position 2 on, after the value convolution
    dv, kv = d, 0

    def double_v_out(m, a, out):
        out = out.clone()
        out[:, 2:, kv * dv : (kv + 1) * dv] *= 2
        return out

    def double_v(x, hook):
        x[:, 2:, kv] *= 2
        return x

    raw_v = _raw(inkling, block.self_attn.v_sconv, double_v_out)
    torch.testing.assert_close(_hooked(inkling, f"blocks.{layer}.attn.hook_v", double_v), raw_v)

    def shift_k_out(m, a, out):  # the k norm's output (batch, pos, kv heads, d_head)
        out = out.clone()
        out[:, 3:, kv] += 0.5
        return out

    def shift_k(x, hook):
        x[:, 3:, kv] += 0.5
        return x

    raw_k = _raw(inkling, block.self_attn.k_norm, shift_k_out)
    torch.testing.assert_close(_hooked(inkling, f"blocks.{layer}.attn.hook_k", shift_k), raw_k)


def test_scores_include_the_relative_bias(inkling):
    """hook_attn_scores - q.k * scaling is the relative-position bias the attention computes
    (times the log factor on the full-attention layer) wherever a query may attend."""
    _, _, cache = _run(inkling)
    config = inkling.hf_model.config
    for layer, block in enumerate(_blocks(inkling)):
        b, attn = f"blocks.{layer}.", block.self_attn
        q, k = cache[b + "attn.hook_q"], cache[b + "attn.hook_k"]
        rep = q.shape[2] // k.shape[2]
        qk = torch.einsum("bqhd,bkhd->bhqk", q, k.repeat_interleave(rep, dim=2)) * attn.scaling
        with torch.no_grad():
            rel = attn.r_proj(cache[b + "ln1.hook_normalized"]).view(*q.shape[:3], -1)
            pos = torch.arange(q.shape[1])
            bias = attn.rel_logits_proj(rel, pos, pos)
        if not attn.is_sliding:  # the log factor scales the bias (and q, in hook_q)
            n = (pos + 1).float() / config.log_scaling_n_floor
            bias = bias * (1 + config.log_scaling_alpha * n.clamp(min=1).log()).view(1, 1, -1, 1)
        scores = cache[b + "attn.hook_attn_scores"]
        allowed = cache[b + "attn.hook_pattern"] > 0
        assert bias[allowed].abs().max() > 0.1  # the bias is not negligible here
        torch.testing.assert_close((scores - qk)[allowed], bias[allowed], atol=1e-4, rtol=1e-4)
        assert (~allowed).any() and (scores[~allowed] < -1e30).all()


def test_per_head_and_per_neuron_decompositions_raise_naming_the_convolution(inkling):
    _, _, cache = _run(inkling)
    w = inkling.weights.layer(1)
    for attr, words in (("W_O", "attn_sconv"), ("b_O", "attn_sconv"), ("OV", "v_sconv"),
                        ("W_K", "k_sconv"), ("QK", "k_sconv"), ("W_V", "v_sconv")):  # fmt: skip
        with pytest.raises(ValueError, match=CONV) as info:
            getattr(w, attr)
        assert words in str(info.value), attr
    assert w.W_Q.shape == (inkling.cfg.n_heads, inkling.cfg.d_model, inkling.cfg.layer(1).d_head)
    with pytest.raises(ValueError, match=f"mlp_sconv.*{CONV}"):
        inkling.weights.layer(0).W_out  # noqa: B018
    with pytest.raises(hl.HookNameError, match=f"attn_sconv.*{CONV}"):
        inkling.run_with_cache(TOKENS, names_filter="blocks.0.attn.hook_result")
    for call in (cache.stack_head_results, cache.get_full_resid_decomposition,
                 lambda: cache.stack_neuron_results(1)):  # fmt: skip
        with pytest.raises(ValueError, match=CONV):
            call()
    # what each sublayer added (after its convolution) still sums to the stream
    stack = cache.decompose_resid(layer=-1)
    torch.testing.assert_close(stack.sum(0), cache["blocks.1.hook_resid_post"])


def test_partial_forwards_refuse_and_sweeps_run_full_passes(inkling):
    assert_full_pass_sweep(inkling, "convolves over positions")


def test_generation_with_a_point_attached_matches_the_model(inkling):
    """Cached decoding (the convolutions' state in the model's own cache) with an attention
    point attached: the explicit path adds the bias at each step as sdpa does."""
    prompt = TOKENS[:1, :4]
    with torch.no_grad():
        want = inkling.hf_model.generate(prompt, max_new_tokens=4, do_sample=False)
        with inkling.hooks(fwd_hooks=[("blocks.1.attn.hook_pattern", lambda x, hook: x)]):
            got = inkling.hf_model.generate(prompt, max_new_tokens=4, do_sample=False)
    assert torch.equal(got, want)


class _Attn(torch.nn.Module):
    """What transformers' attention functions read from the calling module."""

    def __init__(self, groups: int) -> None:
        super().__init__()
        self.num_key_value_groups, self.is_causal = groups, True


def _qkv(q_len, k_len, heads=4, kv=2):
    gen = torch.Generator().manual_seed(0)
    q = torch.randn(2, heads, q_len, 8, generator=gen)
    k, v = (torch.randn(2, kv, k_len, 8, generator=gen) for _ in range(2))
    bias = torch.randn(2, heads, q_len, k_len, generator=gen)
    return q, k, v, bias


def _masks(q_len, k_len):
    past = k_len - q_len
    allowed = torch.arange(k_len)[None] <= torch.arange(q_len)[:, None] + past
    allowed[0, 0] = False if q_len > 1 else allowed[0, 0]
    additive = torch.zeros(q_len, k_len).masked_fill(~allowed, torch.finfo(torch.float32).min)
    return {"none": None, "bool": allowed[None, None], "float": additive[None, None]}


@pytest.mark.parametrize(("q_len", "k_len"), [(5, 5), (1, 6), (3, 7)])
@pytest.mark.parametrize("mask", ["none", "bool", "float"])
def test_a_score_bias_is_added_by_every_path(q_len, k_len, mask, monkeypatch):
    """An additive score bias (`position_bias`) is in the explicit path's scores and in the
    fused path, matching transformers' sdpa, with no mask meaning causal (keys cropped to the
    queries, top-left, when there are more keys), a boolean or an additive mask."""
    module = _Attn(2)
    q, k, v, bias = _qkv(q_len, k_len)
    m = _masks(q_len, k_len)[mask]
    want, _ = sdpa_attention_forward(module, q, k, v, m, scaling=0.3, is_causal=True,
                                     position_bias=bias)  # fmt: skip
    without, _ = sdpa_attention_forward(module, q, k, v, m, scaling=0.3, is_causal=True)
    assert (want - without).abs().max() > 1e-2  # the bias matters
    z, pattern = explicit_attention(module, q, k, v, m, 0.3, 0.0, None, None, None, bias)
    torch.testing.assert_close(z, want, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(pattern.sum(-1), torch.ones_like(pattern[..., 0]))
    fused, _ = attention_forward(module, q, k, v, m, scaling=0.3, position_bias=bias)
    torch.testing.assert_close(fused, want, atol=1e-5, rtol=1e-5)
    # an sdpa without the parameter would drop the bias: attention is computed explicitly then
    monkeypatch.setattr(attention, "_takes_bias", lambda sdpa: False)
    unfused, _ = attention_forward(module, q, k, v, m, scaling=0.3, position_bias=bias)
    torch.testing.assert_close(unfused, want, atol=1e-5, rtol=1e-5)


def test_only_an_sdpa_naming_the_bias_takes_it():
    assert attention._takes_bias(sdpa_attention_forward)
    assert not attention._takes_bias(lambda module, q, k, v, mask, **kwargs: None)


def test_scores_hold_the_bias_where_they_are_read():
    """hook_attn_scores is the scaled q.k plus the bias plus the mask (as TransformerLens's
    includes ALiBi's): here with no mask, causal."""
    q, k, v, bias = _qkv(4, 4)
    seen = {}

    class Scores:
        active = True

        def fire(self, t):
            seen["scores"] = t.clone()
            return t

    class Site:
        scores, pattern = Scores(), type("Off", (), {"active": False})()

    explicit_attention(_Attn(2), q, k, v, None, 0.5, 0.0, None, Site(), None, bias)  # type: ignore[arg-type]
    qk = torch.einsum("bhqd,bhkd->bhqk", q, k.repeat_interleave(2, 1)) * 0.5
    lower = torch.ones(4, 4, dtype=torch.bool).tril()
    torch.testing.assert_close(seen["scores"][..., lower], (qk + bias)[..., lower])
    assert (seen["scores"][..., ~lower] < -1e30).all()
    assert math.isfinite(float(seen["scores"][..., lower].sum()))


def test_a_padded_vocabulary_is_cut_off_as_the_model_cuts_it():
    """Inkling pads its vocabulary (an LM head of `vocab_size` outputs) and cuts the padding off
    its logits (`unpadded_vocab_size`): d_vocab, W_U, b_U and the logit lens have the logits'
    width (the check at load refused the model when the lens was the head's width)."""
    import transformers as tf

    from hooklens.architectures._registry import VOCAB, tiny_config

    torch.manual_seed(0)
    config = tiny_config("inkling_text", {"vocab_size": 2 * VOCAB})  # unpadded: VOCAB
    hf = tf.AutoModelForCausalLM.from_config(config).eval()
    assert hf.get_output_embeddings().out_features == 2 * VOCAB
    model = hl.HookedModel(hf)
    assert model.spec.logits_vocab == "unpadded_vocab_size" and model.cfg.d_vocab == VOCAB
    assert model.W_U.shape == (model.cfg.d_model, VOCAB) and model.b_U.shape == (VOCAB,)
    ref, logits, cache = _run(model)
    assert ref.shape[-1] == VOCAB
    torch.testing.assert_close(logits, ref)
    last = f"blocks.{model.cfg.n_layers - 1}.hook_resid_post"
    torch.testing.assert_close(model.unembed_resid(cache[last]), ref)
    # a logit lens of every layer: the logits' width too
    assert model.unembed_resid(cache.accumulated_resid()).shape[-1] == VOCAB
