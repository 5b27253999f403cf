"""Check a derived adapter against the model's own forward pass before wrapping the model.

A derived adapter (`architectures/_derive.py`) is a guess from module names. One forward of a
few tokens with every point attached tests what the guess claims: the logits do not change,
every point fires once (not a module the model loops over) with its declared shape, the points
compose into the model's computation (embedding -> stream -> attention and MLP outputs ->
stream -> logits), attention patterns are distributions (with a learned sink's share, where the
attention has one), the softmax of the scores (which hold every term, a score bias too), z is
pattern @ v (the rounded values, where the attention rounds them), and pre-rotary q/k equal the
rotated ones at position 0 (the rotated dims times the rotary attention factor; keys rounded
where they are).
Any mismatch refuses the model with an error that lists what did not match.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch

from .._errors import (
    MSG_DERIVED_MISMATCH,
    MSG_SEVERAL_CALLS,
    MSG_UNSUPPORTED_WHOLE,
    SeveralAttentionCallsError,
    UnsupportedModelError,
)
from ..architectures._attn_probe import attention_calls
from ..architectures._layer_checks import has_module
from ..architectures._names import QK_SCALE
from ..architectures._rounded_kv import kv_rounding
from .closeness import eager_spread, gap, scaled
from .hooks import reads_only
from .points import POINTS_BY_SUFFIX, split_name

if TYPE_CHECKING:
    from ..architectures._spec import ArchSpec
    from .config import HookedModelConfig
    from .model import HookedModel

N_TOKENS = 5
#: what a block adds to the stream: attention (or a hybrid's mixer), the MLP, a per-layer
#: embedding branch
_WRITERS = ("hook_attn_out", "hook_mixer_out", "hook_mlp_out", "hook_per_layer_out")


def verify(model: HookedModel) -> None:
    """Raise UnsupportedModelError naming every claim of `model.spec` its forward contradicts."""
    hf, c = model.hf_model, model.cfg
    tol = 1e-4 if c.dtype == torch.float32 else 2e-2
    gen = torch.Generator().manual_seed(0)
    tokens = torch.randint(0, c.d_vocab, (1, N_TOKENS), generator=gen).to(c.device)
    seen: dict[str, torch.Tensor] = {}  # what the model itself computes, recorded on the side
    handles = []
    spec = model.spec
    attending = spec.internals_layers(c.n_layers)  # with attention's points
    if spec.o_proj is not None and attending:
        o_proj = hf.get_submodule(f"{spec.blocks}.{attending[0]}.{spec.o_proj}")
        # its first call (a module that later layers call too is first called by this one)
        handles.append(
            o_proj.register_forward_pre_hook(lambda m, a: _keep(seen, "z", a[0], first=True))
        )
    if spec.moe_experts is not None:
        for layer in range(c.n_layers):
            if "moe" not in spec.layer_features(hf.config, layer):
                continue
            experts = hf.get_submodule(f"{spec.blocks}.{layer}.{spec.moe_experts}")
            handles.append(
                experts.register_forward_hook(
                    lambda m, a, out, key=f"experts{layer}": _keep(seen, key, out)
                )
            )
    fired: dict[str, int] = {}  # a point fires once per forward: more means a looped module

    @reads_only
    def count(x: torch.Tensor, hook: Any) -> None:
        fired[hook.name] = fired.get(hook.name, 0) + 1

    try:
        with torch.no_grad():
            ref = hf(input_ids=tokens, use_cache=False).logits
            with model.hooks([(lambda name: True, count)]):
                logits, activations = model.run_with_cache(tokens, names_filter=model.hook_names())
    finally:
        for handle in handles:
            handle.remove()
    cache = dict(activations.items())  # plain lookups (a cache miss would suggest names)
    problems: list[str] = []

    def expect(what: str, got: torch.Tensor, want: torch.Tensor, within: float = tol) -> None:
        if got.shape != want.shape:
            problems.append(f"{what}: shape {tuple(got.shape)} != {tuple(want.shape)}")
        elif (off := gap(got, want)) > within:
            problems.append(f"{what} (off by {off:.2g})")

    logits_tol = tol
    if gap(logits, ref) > tol:
        # a model can be this sensitive to rounding (in half precision a top-k choice of keys
        # flips; in float32 a deep one's own two attentions differ by more than 1e-4): then
        # ours may stray twice as far as its own eager attention does (the checks of our own
        # points against each other keep the tolerance)
        logits_tol = max(tol, 2 * eager_spread(hf, tokens, ref))
    expect("logits with every point attached equal the model's own", logits, ref, logits_tol)
    silent = [n for n in model.hook_names() if n not in cache]
    if silent:
        problems.append(f"points never fired: {', '.join(silent[:4])}")
        if any(n.endswith("attn.hook_z") for n in silent):
            problems.append("its attention does not call transformers' attention interface")
        raise refusal(spec, c.architecture, problems)
    if again := [f"{n} ({k} times)" for n, k in fired.items() if k > 1]:
        if attending and (several := _several_calls(model, attending[0])):
            raise several  # differential attention: kept whole by the caller, and checked again
        problems.append(
            f"points fired more than once in one forward: {', '.join(again[:4])}; the model runs "
            "these modules more than once per forward (a loop over its blocks), and a point "
            "holds one activation per forward"
        )
        raise refusal(spec, c.architecture, problems)
    for name, value in cache.items():
        at = split_name(name)[0]
        want = declared_shape(c if at is None else c.layer(at), name, N_TOKENS)
        if tuple(value.shape) != want:
            problems.append(f"{name} has shape {tuple(value.shape)}, declared {want}")
    if problems:
        raise refusal(spec, c.architecture, problems)
    embed = cache["hook_embed"] + cache.get("hook_pos_embed", 0)
    embed = embed + cache.get("hook_token_type_embed", 0)
    what = "hook_embed + hook_pos_embed"
    if spec.embed_sum_norm is not None:  # BERT normalizes the embeddings' sum
        with torch.no_grad():
            embed = hf.get_submodule(spec.embed_sum_norm)(embed)
        what = f"{spec.embed_sum_norm}(hook_embed + hook_pos_embed + hook_token_type_embed)"
    one = spec.streams is None  # else several streams, with no point on them: no sums
    if one:
        expect(f"{what} is the stream entering block 0", embed, cache["blocks.0.hook_resid_pre"])
    # post-LN blocks: the block's output is ln2's output, and the sums read ln1's
    out_name = "hook_normalized_resid_post" if spec.post_ln else "hook_resid_post"
    # what q picks up between hook_q and hook_rot_q besides the rotation: a rotary embedding's
    # attention factor (YaRN scales cos and sin: the rotated dims alone), or a scalar the
    # attention multiplies q and k by (Ergo's qk_scale: every dim)
    rope_factors, qk_factors = {1.0}, set()
    for m in hf.modules():
        if isinstance(f := getattr(m, "attention_scaling", None), float):
            rope_factors.add(f)
        for scale in (getattr(m, a, None) for a in QK_SCALE):
            if isinstance(scale, torch.Tensor) and scale.numel() == 1:
                qk_factors.add(float(scale))
    for layer in range(c.n_layers):
        b = f"blocks.{layer}."
        rep = c.n_heads // max(c.layer(layer).n_kv_heads, 1)
        none = torch.empty(0)  # several streams: no point on them (nor sums, below)
        pre, post = cache.get(b + "hook_resid_pre", none), cache.get(b + "hook_resid_post", none)
        # what mixes positions (attention, or a hybrid's mixer) and the MLP, where the layer has it
        parts = [p for p in _WRITERS if b + p in cache]
        # what mixes positions: attention, a mixer, or both side by side (Falcon-H1)
        mixing = [p for p in parts if p in _WRITERS[:2]] or parts[:1]
        mix = " + ".join(mixing)
        if "whole" in spec.layer_features(hf.config, layer) or spec.unsummed or not one:
            pass  # a block kept whole, or one that rescales its residual: no sum to check
        elif spec.post_ln:
            expect(
                f"{b}ln1.hook_normalized + hook_mlp_out is hook_resid_post",
                cache[b + "ln1.hook_normalized"] + cache[b + "hook_mlp_out"],
                post,
            )
        else:
            expect(
                f"{b}hook_resid_pre + {' + '.join(parts)} is hook_resid_post",
                pre + sum(cache[b + p] for p in parts),
                post,
            )
        if b + "hook_adapter_out" in cache:  # X-MOD: ln2's module again, on ln2 + adapter
            with torch.no_grad():
                ln2 = hf.get_submodule(f"{spec.blocks}.{layer}.{spec.ln2}")
                again = ln2(cache[b + "ln2.hook_normalized"] + cache[b + "hook_adapter_out"])
            expect(f"{b}ln2 of ln2.hook_normalized + hook_adapter_out is {out_name}",
                   again, cache[b + out_name])  # fmt: skip
        if b + "hook_resid_mid" in cache and not spec.unsummed:
            expect(
                f"{b}hook_resid_pre + {mix} is hook_resid_mid",
                pre + sum(cache[b + p] for p in mixing),
                cache[b + "hook_resid_mid"],
            )
        if layer + 1 < c.n_layers and one:
            expect(
                f"{b}{out_name} enters block {layer + 1}",
                cache[b + out_name],
                cache[f"blocks.{layer + 1}.hook_resid_pre"],
            )
        if b + "mlp.hook_expert_out" in cache and spec.moe_weights_at == "inputs":
            # the weights scaled the experts' inputs: their outputs add up (over the experts)
            expect(
                f"{b}mlp.hook_expert_out summed is the experts' output summed over the experts",
                cache[b + "mlp.hook_expert_out"].sum(-2).flatten(0, 1),
                seen[f"experts{layer}"].view(c.n_experts, -1, c.d_model).sum(0),
            )
        elif b + "mlp.hook_expert_out" in cache and spec.moe_weights_at == "grouped":
            # the experts' output is in expert order: the weighted sum over the choices is
            # hook_mlp_out up to the MoE's bias, the same for every token
            weights = cache[b + "mlp.hook_expert_weights"]
            mixed = (cache[b + "mlp.hook_expert_out"] * weights[..., None]).sum(-2)
            rest = (cache[b + "hook_mlp_out"] - mixed).flatten(0, 1)
            expect(
                f"{b}hook_mlp_out is mlp.hook_expert_out weighted by hook_expert_weights, summed, "
                "plus one bias",
                rest,
                rest[:1].expand_as(rest),
            )
            expect(
                f"{b}mlp.hook_expert_out summed is the experts' output summed",
                cache[b + "mlp.hook_expert_out"].sum((0, 1, 2)),
                seen[f"experts{layer}"].sum(0),
            )
        elif b + "mlp.hook_expert_out" in cache:
            weights = cache[b + "mlp.hook_expert_weights"]
            mixed = (cache[b + "mlp.hook_expert_out"] * weights[..., None]).sum(-2)
            expect(
                f"{b}mlp.hook_expert_out weighted by hook_expert_weights is the experts' output",
                mixed.flatten(0, 1),
                seen[f"experts{layer}"],
            )
        if layer not in attending:
            continue
        pattern = cache[b + "attn.hook_pattern"]
        total, what = pattern.sum(-1), f"{b}attn.hook_pattern sums to 1"
        if b + "attn.hook_sink" in cache:  # a learned sink takes the rest of each row
            total, what = total + cache[b + "attn.hook_sink"], what.replace(" sums", " + hook_sink")
        expect(what, total, torch.ones_like(total))
        if b + "attn.hook_sink" not in cache:  # the scores hold every term (a score bias too)
            soft = torch.softmax(cache[b + "attn.hook_attn_scores"].float(), dim=-1)
            expect(f"{b}softmax(attn.hook_attn_scores) is hook_pattern", pattern, soft)
        read = _read_v(spec, layer)  # the values z is made of
        v = cache[f"{b}attn.hook_{read}"].repeat_interleave(rep, dim=2)
        z = torch.einsum("bhqk,bkhd->bqhd", pattern.float(), v.float())
        expect(f"{b}attn.hook_z is hook_pattern @ hook_{read}", cache[b + "attn.hook_z"], z)
        source = dict(spec.kv_reused).get(layer)
        if source is not None:  # what the scores read and z is made of: what source handed on
            for claim, here, handed in _reused(model, cache, layer, source):
                expect(claim, here, handed)
        if c.positional == "rotary":
            # at position 0 the rotation is the identity, times the rotary embedding's
            # attention factor where it has one (YaRN scales cos and sin): q picks the factor;
            # where q/k norms follow the rotation (Hunyuan), hook_q/hook_k pass through them first
            block = hf.get_submodule(f"{spec.blocks}.{layer}")
            norms = spec.qk_norms_after_rotary
            pre_rot = {}
            qk = "q" if source is not None else "qk"  # a reusing layer has no keys of its own
            rounding = _rounding(model, layer)  # of the keys, before the scores read them
            for i, x in enumerate(qk):
                t = cache[f"{b}attn.hook_{x}"]
                if norms is not None and has_module(block, norms[i]):  # Llama 4's NoPE layers
                    with torch.no_grad():  # have no q/k norm
                        t = block.get_submodule(norms[i])(t)
                if x == "k" and rounding is not None:
                    t = rounding(t)
                pre_rot[x] = t[:, 0].float()
            rot_q0 = cache[f"{b}attn.hook_rot_q"][:, 0]
            d = pre_rot["q"].shape[-1]  # the rotated dims: the first rotary_dim (latent: last)
            r = min(c.rotary_dim or d, d)
            rotated = slice(d - r, d) if spec.latent_kv is not None else slice(0, r)
            scales = [scaled(rot_q0, rotated, f) for f in rope_factors]
            scales += [scaled(rot_q0, slice(0, d), f) for f in qk_factors]
            factor = min(scales, key=lambda f: gap(pre_rot["q"] * f, rot_q0))
            for x in qk:
                what = f"{b}attn.hook_{x} is hook_rot_{x} at position 0 (rotary is the identity)"
                if norms is not None and has_module(block, norms[0]):
                    what = f"{b}attn.hook_rot_{x} is the {x} norm of hook_{x} at position 0"
                if x == "k" and rounding is not None:
                    what = f"{b}attn.hook_rot_k is the rounding of hook_k at position 0"
                rot = cache[f"{b}attn.hook_rot_{x}"]
                expect(what, pre_rot[x] * factor, rot[:, 0].float())
    if "z" in seen:
        b = f"blocks.{attending[0]}.attn."
        z0, what = cache[b + "hook_z"], f"{spec.o_proj}'s input is attn.hook_z"
        if b + "hook_gate" in cache:  # a gated output: the projection reads z * gate
            z0, what = z0 * cache[b + "hook_gate"], what + " * attn.hook_gate"
        found = len(problems)
        expect(what, seen["z"], z0.flatten(-2))
        if len(problems) > found and (several := _several_calls(model, attending[0])):
            raise several  # why: one module calls attention more than once
    if one:
        last = cache[f"blocks.{c.n_layers - 1}.{out_name}"]
        with torch.no_grad():
            got = model.unembed_resid(last)
        # the logits of the run the cache comes from (their distance from the model's own is
        # checked above, with its own tolerance)
        expect(f"unembed_resid(last {out_name}) is the logits", got, logits)
    if problems:
        raise refusal(spec, c.architecture, problems)


def declared_shape(c: HookedModelConfig, name: str, pos: int) -> tuple[int, ...]:
    """The shape point `name` declares for one sequence of `pos` tokens, with `c`'s sizes (for
    a block's point, `cfg.layer(l)`: that layer's own widths)."""
    dims = {
        "batch": 1,
        "pos": pos,
        "q": pos,
        "k": pos,
        "d_model": c.d_model,
        "n_heads": c.n_heads,
        "n_kv_heads": c.n_kv_heads,
        "d_head": c.d_head,
        "d_head_qk": c.d_head_qk,
        "d_mlp": c.d_mlp,
        "n_experts": c.n_experts,
        "n_router_classes": c.n_router_classes,
        "top_k": c.top_k,
        "1": 1,
    }
    return tuple(dims[s] for s in POINTS_BY_SUFFIX[split_name(name)[1]].shape)


def _keep(seen: dict[str, torch.Tensor], key: str, value: object, first: bool = False) -> None:
    t = value[0] if isinstance(value, tuple) else value
    if isinstance(t, torch.Tensor) and not (first and key in seen):
        seen[key] = t.detach()


def _message(cls: str, problems: list[str]) -> str:
    return MSG_DERIVED_MISMATCH.format(cls=cls, problems="\n- ".join(problems))


def _reused(
    model: HookedModel, cache: dict[str, torch.Tensor], layer: int, source: int
) -> list[tuple[str, torch.Tensor, torch.Tensor]]:
    """(claim, got, want): a layer reusing `source`'s keys and values reads what `source`
    handed on: its rotated keys are `source`'s and its values `source`'s hook_v (read before
    they are handed on), each rounded where one of the two layers rounds and the other not."""
    here, there = f"blocks.{layer}.attn.", f"blocks.{source}.attn."
    mine, theirs = _rounding(model, layer), _rounding(model, source)
    found = []
    if here + "hook_rot_k" in cache:
        k_here, k_there = cache[here + "hook_rot_k"], cache[there + "hook_rot_k"]
        if mine is not None and theirs is None:
            k_there = mine(k_there)
        elif theirs is not None and mine is None:
            k_here = theirs(k_here)
        what = f"{here}hook_rot_k is {there}hook_rot_k (keys and values reused)"
        found.append((what, k_here, k_there))
    v_there = cache[there + "hook_v"]
    read = _read_v(model.spec, layer)
    of = "the rounding of " if mine else ""
    what = f"{here}hook_{read} is {of}{there}hook_v (keys and values reused)"
    found.append((what, cache[f"{here}hook_{read}"], mine(v_there) if mine else v_there))
    return found


def _read_v(spec: ArchSpec, layer: int | None) -> str:
    """The point holding the values `layer`'s z is made of: rounded ones where it rounds."""
    return "rounded_v" if layer in spec.kv_rounded else "v"


def _rounding(model: HookedModel, layer: int) -> Any:
    """The function `layer`'s attention rounds its keys with before the scores read them (where
    it rounds them: `ArchSpec.kv_rounded`), or None."""
    spec = model.spec
    if layer not in spec.kv_rounded:
        return None
    return kv_rounding(model.hf_model.get_submodule(f"{spec.blocks}.{layer}.{spec.attn}"))


def _several_calls(model: HookedModel, layer: int) -> SeveralAttentionCallsError | None:
    """The error for an attention module of `layer` that calls the attention function more
    than once per forward (differential attention), or None."""
    spec = model.spec
    attn = model.hf_model.get_submodule(f"{spec.blocks}.{layer}.{spec.attn}")
    if (calls := attention_calls(model.hf_model, attn)) <= 1:
        return None
    several = MSG_SEVERAL_CALLS.format(cls=type(attn).__name__, calls=calls, o_proj=spec.o_proj)
    return SeveralAttentionCallsError(_message(model.cfg.architecture, [several]), several)


def refusal(spec: ArchSpec, cls: str, problems: list[str]) -> UnsupportedModelError:
    """The refusal of a derived adapter that did not check out: with the template's reason
    where its blocks were kept whole (`_whole_blocks.py`), else listing the `problems`."""
    whole = spec.whole_blocks()
    if whole is not None:
        problems_text = "; ".join(problems)
        return UnsupportedModelError(
            MSG_UNSUPPORTED_WHOLE.format(cls=cls, why=whole, problems=problems_text)
        )
    return UnsupportedModelError(_message(cls, problems))
