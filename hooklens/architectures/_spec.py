"""The adapter dataclass: everything the engine needs to know about one model family, as data.

An adapter names Hugging Face module paths (relative to the causal-LM model for model-level
modules, relative to one decoder block for the rest) and the family's features. The engine reads
these fields; it never looks at a family's name. See `README.md` in this folder.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from .._engine.point_spec import Feature
from ._decoder_config import decoder_view
from ._spec_parts import (
    AttnGate,
    ConvRole,
    LatentKV,
    LayerLayout,
    Layout,
    Proj,
    is_gated_norm,
)

#: Features a block kept whole has none of (its parts and their norms).
BLOCK_PARTS = frozenset(
    ("attention", "mha", "mixer", "mlp", "sequential", "ln1", "ln2", "dense_mlp", "gated_mlp",
     "moe", "sinks", "gated_attn", "adapter", "per_layer_input")
)  # fmt: skip

#: (ArchSpec field, feature): the features a family has where the field is set
_PRESENT: tuple[tuple[str, Feature], ...] = (
    ("ln1", "ln1"), ("ln2", "ln2"), ("final_norm", "final_norm"), ("streams", "streams"),
    ("token_type_embed", "token_types"), ("per_layer_out", "per_layer_input"),
    ("adapter_out", "adapter"),
)  # fmt: skip

#: The parts a block scales outside their modules (`ArchSpec.factors`).
FactorRole = Literal["attn_in", "k", "attn_out", "mixer_out", "mlp_pre"]


def text_config(config: Any) -> Any:
    """The language model's config: a multimodal model's text config, an encoder-decoder's read
    as its decoder's (`_decoder_config.py`), else `config` itself."""
    get = getattr(config, "get_text_config", None)
    return decoder_view(get() if callable(get) else config)


@dataclass(frozen=True)
class ArchSpec:
    """One family's adapter.

    Model-level paths are relative to the causal-LM model, block paths to one decoder block.
    `attn` calls transformers' attention function; `attn_out` outputs what is added to the
    stream (the same module, or a post-attention norm); `mlp_in` is the MLP's first projection
    (the gate in gated MLPs), `mlp_up` a gated MLP's up projection (None when not gated, or when
    `mlp_gate_up_fused` puts both in `mlp_in`), `mlp_down` the output projection (its input is
    `mlp.hook_post`), `mlp_out` outputs what is added. `q_source`/`k_source`: where pre-rotary
    q/k live (None: the attention function's own inputs, families without rotary).

    `qkv` names the q, k and v projections (one path three times when fused, laid out as
    `qkv_layout` says) and `o_proj` the output projection, where `hooklens.analysis` reads the
    weights in TransformerLens's shapes (None: not described). Whether a projection stores
    (out, in) (`nn.Linear`) or (in, out) (`Conv1D`) is read from the module itself.
    """

    family: str
    hf_classes: tuple[str, ...]
    embed: str
    blocks: str
    #: None: no norm after the last block (a post-LN decoder whose last ln2 output is the
    #: unembedding's input, BART): the model has no `ln_final` points
    final_norm: str | None
    unembed: str
    ln1: str | None
    attn: str
    attn_out: str
    mlp_in: str
    mlp_down: str
    mlp_out: str
    ln2: str | None
    pos_embed: str | None = None
    #: positions as rows of a table the model indexes itself (CTRL's `pos_encoding` buffer): (its
    #: path, path of the module whose input is the embeddings' sum), `_engine/pos_table.py`
    pos_table: tuple[str, str] | None = None
    #: a norm of the token embedding before block 0 (BLOOM): `hook_embed` is its output
    embed_norm: str | None = None
    #: a module that projects the embeddings, at their own width, to the stream before block 0
    #: (RemBERT's `embedding_hidden_mapping_in`, ELECTRA's `embeddings_project`): `hook_embed` is
    #: its output, the stream entering block 0. What it reads (token, position and token-type
    #: embeddings, their sum normalized) is narrower than d_model and has no points, and no
    #: (d_vocab, d_model) matrix gives `hook_embed` (`W_E` and `W_pos` raise, saying why); with
    #: `pos_embed` set it mixes per-token embeddings before positions are added (RoCBert)
    embed_proj: str | None = None
    #: post-LN blocks (BERT): `ln1` normalizes `hook_resid_mid` (resid_pre + attn_out) into the
    #: MLP's input, `ln2` normalizes `hook_resid_post` (ln1's output + mlp_out) into the block's
    #: output (`hook_normalized_resid_post`, the next block's `hook_resid_pre`), as in
    #: TransformerLens's BertBlock
    post_ln: bool = False
    #: why a block's output is not its input plus what its parts output (MiniMax keeps alpha *
    #: ln1(x) as its residual, Beam scales the stream at each addition): the points inside the
    #: blocks hold, and sums of parts (`decompose_resid`) raise with this reason
    unsummed: str | None = None
    streams: str | None = None  # why the stream is several: its parts' points alone
    #: a token-type embedding added to the token and position embeddings (all type 0 in a
    #: causal-LM call), and a norm of that sum before block 0 (BERT's embedding LayerNorm)
    token_type_embed: str | None = None
    embed_sum_norm: str | None = None
    #: layers whose `ln1` is an identity (ModernBERT's decoder's layer 0, whose attention reads
    #: the stream `embed_sum_norm` normalized): they have no `ln1` points
    no_ln1_layers: tuple[int, ...] = ()
    #: the module that turns the stream leaving the last block into the unembedding's input
    #: (BERT's LM-head transform: dense, activation, LayerNorm), when that is more than
    #: `final_norm`; the unembedding's input is read where the module calls `unembed`.
    #: `final_norm` is that LayerNorm inside it (post-LN), or a norm applied before it (pre-LN)
    head: str | None = None
    #: mixture-of-experts MLP: its router (returns logits per expert first) and its experts
    #: module (called with hidden states, chosen expert ids, their weights); None when dense.
    moe_router: str | None = None
    moe_experts: str | None = None
    #: the layers whose MLP is the mixture of experts, when others are dense (None: all)
    moe_layers: tuple[int, ...] | None = None
    #: where the chosen experts' weights apply: "outputs" (the experts module takes hidden
    #: states, chosen ids and weights and weights each output), or "inputs" (Llama 4: the router
    #: returns (scores over every expert, 0 where not chosen; logits), the experts module takes
    #: one copy of the tokens per expert times its score and returns each copy's output;
    #: `_engine/scored_moe.py`), or "grouped" (JetMoE: the router returns its choices sorted by
    #: expert, and `moe_experts` is the projection whose output is each choice's expert output
    #: in that order, before its weight; `_engine/grouped_moe.py`)
    moe_weights_at: Literal["outputs", "inputs", "grouped"] = "outputs"
    #: the module whose first input is `hook_resid_mid` (edited in place), when not ln2
    resid_mid_at: str | None = None
    mlp_up: str | None = None
    mlp_gate_up_fused: bool = False
    #: a module beside `mlp_out` whose output the block adds to it in the same step (a shared
    #: MLP next to a mixture of experts): `hook_mlp_out` is the sum of the two
    mlp_beside: str | None = None
    q_source: Proj | None = None
    k_source: Proj | None = None
    #: where layers reuse keys and values (`kv_reused`), the others' hook_v (`_kv_sharing.py`)
    v_source: Proj | None = None
    kv_reused: tuple[tuple[int, int], ...] = ()  # (layer, the layer whose keys it reuses)
    #: layers whose attention rounds its keys and values before attending (`_rounded_kv.py`)
    kv_rounded: tuple[int, ...] = ()
    #: q and k norms (block paths) the attention applies after the rotation (Hunyuan V1):
    #: `hook_q`/`hook_k` are then the projections' outputs, `hook_rot_q`/`hook_rot_k` what the
    #: scores read (rotated, then normed), so at position 0 `hook_rot_q` is the q norm of `hook_q`
    qk_norms_after_rotary: tuple[str, str] | None = None
    #: multi-head latent attention: where q, k and v are formed (q/k sources are then None)
    latent_kv: LatentKV | None = None
    norm: Literal["layernorm", "rmsnorm"] = "rmsnorm"
    #: (inner norm, gate) child names of a gated norm (`_names.GATED_NORM`), where some norm's
    #: place holds one (AXK2): there `ln*.hook_scale`/`hook_normalized` are the inner norm's
    #: (x / scale times its weight), and attention or the MLP reads that output times a gate
    #: computed from it, which no point shows; `norm_module` finds the inner norm. fold_ln is
    #: refused (the gate reads the weighted output), and the per-head input points, which
    #: would recompute attention's input without the gate, are left out
    gated_norm: tuple[str, str] | None = None
    #: Gemma's RMSNorm multiplies by (offset + weight); everybody else by weight.
    norm_weight_offset: float = 0.0
    #: "alibi"/"relative": positions enter as a bias on the scores (BLOOM's; one the attention
    #: computes, Inkling's); "none": none (a hybrid whose recurrent mixers carry the order)
    positional: Literal["learned", "rotary", "alibi", "relative", "none"] = "rotary"
    #: bool, or the name of a boolean config attribute (GPT-NeoX: `use_parallel_residual`).
    parallel_residual: bool | str = False
    #: config attributes of a final-logit soft-cap (Gemma 2), and of how many of the head's
    #: outputs are logits (Inkling pads its vocabulary), applied by `unembed_resid`.
    final_logit_softcap: str | None = None
    logits_vocab: str | None = None
    qkv: tuple[str, str, str] | None = None
    qkv_layout: Layout = "flat"
    #: (config attribute, "mul" or "div"): a logit scale the model applies after its unembedding
    #: (Cohere multiplies by `logit_scale`, Granite divides by `logits_scaling`).
    logit_scale: tuple[str, str] | None = None
    #: factors the model applies outside any module: a config attribute multiplying the token
    #: embedding before block 0 (Granite's `embedding_multiplier`), and a block attribute
    #: multiplying attention's and the MLP's outputs before they are added to the stream
    #: (Granite's `residual_multiplier`, MiniCPM3's `residual_scale`). `hook_embed`,
    #: `hook_attn_out` and `hook_mlp_out` include them: they are what enters the stream.
    embed_scale: str | None = None
    #: a module (model path) whose number attribute (`embed_scale`, `normalizer`: `_names.py`)
    #: multiplies the token embedding's output outside the embedding module (Marian's decoder,
    #: RecurrentGemma's model, which multiplies by sqrt(d_model) in bfloat16): in `hook_embed`
    embed_scale_at: str | None = None
    #: a config attribute whose square root multiplies the token embedding outside the
    #: embedding module (CTRL: sqrt(n_embd)): in `hook_embed`
    embed_scale_sqrt: str | None = None
    output_scale: str | None = None
    #: factors a block applies to one part outside that part's module, as (role, block path of
    #: a number attribute) pairs (Falcon-H1's µP multipliers; roles: `FACTOR_ROLES`). The points
    #: include them, and so do the weights (`_engine/linear.py`, `analysis`): "attn_in"
    #: multiplies attention's input (ln1's output: in W_Q, W_K, W_V), "k" the k projection's
    #: output (`hook_k`, W_K and b_K; the per-head input points are then left out, the model
    #: would apply it twice), "attn_out" and "mixer_out" what attention and the mixer add
    #: (`hook_attn_out`, `hook_mixer_out`, W_O and b_O; `hook_result` is then left out),
    #: "mlp_pre" the MLP's first projection's output before the activation (`mlp.hook_pre`)
    factors: tuple[tuple[FactorRole, str], ...] = ()
    convs: tuple[tuple[ConvRole, str], ...] = ()  # convolutions over positions (`ConvRole`)
    #: a block's branch that adds, after the MLP, a projection of the token's own per-layer
    #: embedding to the stream (Gemma 3n / 4): the module whose output is added
    #: (`hook_per_layer_out`); None when blocks have no such branch
    per_layer_out: str | None = None
    #: a language adapter after a post-LN block's MLP (X-MOD): (block path, n) of the module
    #: whose output at its n-th call (from 0) in each forward of the block is what the adapter
    #: adds (`hook_adapter_out`). The block then calls `ln2` twice: first on `hook_resid_post`
    #: (the `ln2` points), then on ln2's output + the adapter's (its output is the block's)
    adapter_out: tuple[str, int] | None = None
    #: the attention's output projection (its input is `attn.hook_z`, times `attn_gate`'s
    #: gate where there is one), where known
    o_proj: str | None = None
    #: a bias (block path of a parameter) that the attention returns beside its output and the
    #: block adds to it (GPT-NeoX-Japanese's last layer's `dense_bias`; layers without the
    #: parameter have none): `hook_attn_out` and b_O include it
    o_bias: str | None = None
    #: the layers whose attention joins a learned logit per head (an attention sink: GPT-OSS's
    #: `sinks`, which the attention function receives as `s_aux`) to the softmax over the keys
    #: and then drops it: their `hook_pattern` rows sum to 1 minus `hook_sink`
    sink_layers: tuple[int, ...] = ()
    #: a gate on attention's output before `o_proj` (Qwen3-Next, AFMoE): `attn.hook_gate`
    attn_gate: AttnGate | None = None
    #: per-layer structure of a hybrid (None: every layer is attention, then the MLP)
    layers: tuple[LayerLayout, ...] | None = None
    #: layers kept as parallel lists of parts (XLM): (name in a layer's view, list's name in
    #: the module `blocks` names the views of) per part; `_split_layers.py`
    layer_lists: tuple[tuple[str, str], ...] | None = None
    #: a reimplementation of the `attn` module's forward for families whose attention computes
    #: scores itself: it hands q, k, v and the mask to hooklens's attention function, and is
    #: installed only while an attention-internal point is active (`_engine/own_attention.py`)
    attn_forward: Callable[..., Any] | None = None
    #: the model builds its attention masks for its own implementation (MPT): with `attn_forward`,
    #: hooklens swaps the forwards only and keeps the implementation name
    own_masks: bool = False
    #: points whose module output the model edits in place later (Falcon adds attention's output
    #: into the MLP's, GIT the positions into the word embeddings, XLM masks ln2's): they hand
    #: it a copy (read for hook_embed, hook_mlp_out, ln2 and hook_normalized_resid_post)
    edited_in_place: tuple[str, ...] = ()
    #: the number of key/value heads from the config, where the config has no
    #: `num_key_value_heads` (Falcon's multi-query flag)
    kv_heads: Callable[[Any], int] | None = None
    #: True for adapters derived from the model's structure (`_derive.py`): checked against the
    #: model's own forward when a model is wrapped (`_engine/verify.py`).
    derived: bool = False
    #: (config attribute, required value, why): configurations the adapter cannot describe.
    config_requirements: tuple[tuple[str, Any, str], ...] = field(default_factory=tuple)
    notes: str = ""

    def added_scale(self, block: Any, role: FactorRole | None = None) -> float:
        """What multiplies a part's output on its way into the stream: the block's
        `output_scale` (Granite) times the part's own factor (`role`: Falcon-H1's µP)."""
        scale = float(getattr(block, self.output_scale)) if self.output_scale else 1.0
        return scale * (self.factor(block, role) if role is not None else 1.0)

    def factor(self, block: Any, role: FactorRole) -> float:
        """The factor `block` applies for `role` (1.0 where the adapter names none)."""
        path = dict(self.factors).get(role)
        if path is None:
            return 1.0
        owner, _, attr = path.rpartition(".")
        return float(getattr(block.get_submodule(owner), attr))

    def conv(self, role: ConvRole) -> str | None:
        return dict(self.convs).get(role)  # the path of the convolution on `role`, or None

    def is_parallel(self, config: Any) -> bool:
        """Whether attention and MLP read the same residual stream (per this model's config)."""
        if isinstance(self.parallel_residual, str):
            return bool(getattr(text_config(config), self.parallel_residual))
        return self.parallel_residual

    def layer_features(self, config: Any, layer: int) -> frozenset[Feature]:
        """The features of one block (a dense layer of a partly-MoE model has a dense MLP; a
        mixer layer of a hybrid has no attention, and maybe no MLP)."""
        found = self.features(config)
        layout = self.layers[layer] if self.layers is not None else None
        if layout is not None and layout.kind == "skipped":  # not run here: the stream alone
            return frozenset(f for f in found if f not in BLOCK_PARTS) | {"skipped"}
        if layout is not None and layout.kind == "block":  # kept whole: the stream's points
            kept: set[Feature] = {f for f in found if f not in BLOCK_PARTS}
            kept.add("whole")
            if layout.attends_inside:  # with attention's internals (Zamba's shared block)
                kept.add("attn_inside")
            return frozenset(kept)
        if layout is not None and layout.kind == "mixer":
            found = (found - {"attention", "mha"}) | {"mixer"}
        if layout is not None and layout.beside is not None:
            found = found | {"mixer"}
        if layout is not None and layout.kind == "mlp":  # its one norm is the MLP's
            found = (found - {"attention", "mha", "ln1", "sequential"}) | {"ln2"}
        if layout is not None and not layout.mlp:
            found = found - {"mlp", "sequential", "ln2", "dense_mlp", "gated_mlp", "moe"}
        if layout is not None and layout.norms is not None:  # its own norms (OLMo-hybrid)
            own = {f for f, n in (("ln1", layout.norms[0]), ("ln2", layout.norms[1])) if n}
            found = (found - {"ln1", "ln2"}) | own  # type: ignore[operator]
        if layer in self.sink_layers:
            found = found | {"sinks"}
        if layer in dict(self.kv_reused):
            found = found | {"reused_kv"}
        if layer in self.kv_rounded:
            found = found | {"rounded_kv"}
        if layer in self.no_ln1_layers:
            found = found - {"ln1"}
        if self.moe_layers is None or layer in self.moe_layers or "mlp" not in found:
            return found
        dense: set[Feature] = {"dense_mlp"}
        if self.mlp_up is not None or self.mlp_gate_up_fused:
            dense.add("gated_mlp")
        return (found - {"moe"}) | dense

    def norm_module(self, block: Any, path: str) -> Any:
        """The norm at block path `path`: the inner norm where a gated norm sits there."""
        module = block.get_submodule(path)
        if self.gated_norm is not None and is_gated_norm(module, self.gated_norm):
            return module.get_submodule(self.gated_norm[0])
        return module

    def norms_of(self, layer: int) -> tuple[str | None, str | None, str, str | None]:
        """Layer `layer`'s (ln1, ln2, mlp_out, resid_mid's module): its own, or the adapter's."""
        own = self.layers[layer].norms if self.layers is not None else None
        return own or (self.ln1, self.ln2, self.mlp_out, self.resid_mid_at or self.ln2)

    def whole_blocks(self) -> str | None:
        """Why this adapter keeps every block whole (`_whole_blocks.py`: the residual stream's
        points alone), or None where it takes blocks apart."""
        return next((x.opaque for x in self.layers or () if x.kind == "block"), None)

    def attention_layers(self, n_layers: int) -> list[int]:
        """The layers that attend (all of them, unless this is a hybrid)."""
        if self.layers is None:
            return list(range(n_layers))
        return [i for i, lay in enumerate(self.layers) if lay.kind == "attention"]

    def internals_layers(self, n_layers: int) -> list[int]:
        """The layers with attention's internal points (q, k, v, scores, pattern, z): those
        that attend, and blocks kept whole that call attention off the stream."""
        if self.layers is None:
            return list(range(n_layers))
        return [i for i, x in enumerate(self.layers) if x.kind == "attention" or x.attends_inside]

    def layer_words(self, layer: int, n_layers: int) -> dict[str, str]:
        """What the missing-point messages of `points.py` say about `layer` (its mixer's class,
        why an attention module kept whole as its mixer has no attention points, and the layers
        with attention)."""
        layout = self.layers[layer] if self.layers is not None and layer < n_layers else None
        attending = self.attention_layers(n_layers)
        mixer = layout.mixer_class if layout is not None else "attention"
        opaque = layout.opaque if layout is not None else None
        kept = "the block" if layout is not None and layout.kind == "block" else mixer
        role = "" if kept == "the block" else ", as the layer's mixer"
        why = f" points (hooklens keeps {kept} whole{role}: {opaque})"
        if layout is not None and layout.kind == "skipped":
            why = f" points (the layer does not run here: {opaque})"
        return {
            "mixer": mixer,
            "why": why if opaque else "",
            "reason": opaque or "",
            "attn_layers": ", ".join(map(str, attending)) or "none",
            "kv_source": str(dict(self.kv_reused).get(layer, "")),
            "streams": self.streams or "",
        }

    def features(self, config: Any) -> frozenset[Feature]:
        """The optional hook-point features this family (with this config) has."""
        found: set[Feature] = set()
        config = text_config(config)
        if self.positional == "learned" and (self.embed_proj is None or self.pos_embed):
            found.add("learned_pos")
        elif self.positional == "rotary":
            found.add("rotary")
        if not self.is_parallel(config):
            found.add("sequential")
        if self.moe_experts is not None:
            found.add("moe")
        else:
            found.add("dense_mlp")
        if self.moe_experts is None and (self.mlp_up is not None or self.mlp_gate_up_fused):
            found.add("gated_mlp")
        found |= {feature for attr, feature in _PRESENT if getattr(self, attr) is not None}
        if self.post_ln:
            found.add("post_ln")
        if self.attention_layers(len(self.layers or ())) or self.layers is None:
            found.add("attention")
            if self.attn_gate is not None:
                found.add("gated_attn")
        found.add("mlp")
        kv = self.n_kv_heads(config)
        if kv is None or kv == getattr(config, "num_attention_heads", kv):
            found.add("mha")
        return frozenset(found)

    def n_kv_heads(self, config: Any) -> int | None:
        """The model's number of key/value heads (None: the config does not say)."""
        if self.kv_heads is not None:
            return self.kv_heads(config)
        try:
            return getattr(config, "num_key_value_heads", None)
        except RuntimeError:  # a per-layer value (transformers' `per_layer_config`): the fewest
            return min(layer.num_key_value_heads for layer in config.per_layer_config)
