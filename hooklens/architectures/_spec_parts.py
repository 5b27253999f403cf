"""The parts of an adapter (`ArchSpec`, `_spec.py`) that describe one piece of a layer: where q
or k is read (`Proj`), multi-head latent attention (`LatentKV`), an attention output gate
(`AttnGate`), and one layer of a model whose layers differ (`LayerLayout`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import torch

#: How a projection's output holds q or k (or q, k, v together):
#: - "flat": (batch, pos, heads * d_head), e.g. Llama's `q_proj`
#: - "bphd": (batch, pos, heads, d_head), e.g. Qwen3's `q_norm`
#: - "bhpd": (batch, heads, pos, d_head), e.g. Gemma 3's `q_norm`
#: - "concat_qkv": (batch, pos, (n_heads + 2 n_kv_heads) * d_head), q then k then v (Phi-3)
#: - "per_head_qkv": (batch, pos, n_heads * 3 * d_head), per head q, k, v (GPT-NeoX)
#: - "q_gate_per_head" (q/k/v weights only): k and v flat, and the q projection holds per head
#:   the queries then the attention gate's input, (batch, pos, n_heads * 2 * d_head) (Qwen3-Next;
#:   in latent attention, `LatentKV.q_gate`)
#: - "tuple_bphd": a tuple of per-head tensors (batch, pos, heads, d_head), q, k (and v) in
#:   that order (ZAYA's q/k norm returns (q, k), its convolving projection (q, k, v))
Layout = Literal[
    "flat", "bphd", "bhpd", "concat_qkv", "per_head_qkv", "q_gate_per_head", "tuple_bphd"
]
#: How a gate projection's output holds the attention gate's input (`AttnGate`):
#: - "flat": (batch, pos, n_heads * d_head), one gate per feature of z
#: - "per_head": (batch, pos, n_heads), one gate per head
#: - "q_gate_per_head": the last d_head features of each head's slice of the q projection's
#:   output (the queries come first)
GateLayout = Literal["flat", "per_head", "q_gate_per_head"]
#: the nonlinearity of an attention output gate (`_gate.GATE_ACTS`)
GateAct = Literal["sigmoid", "softplus"]
#: The parts a block convolves over positions (`ArchSpec.convs`, Inkling's short convolutions):
#: - "q", "k", "v": a projection's output before the attention function reads it; q/k sources
#:   are then None (`hook_q`/`hook_k`/`hook_v` are what the function receives), and W_K / W_V
#:   do not give `hook_k` / `hook_v` (they raise, naming the convolution)
#: - "attn_out", "mlp_out": what attention or the MLP outputs, before the block adds it: the
#:   adapter's `attn_out`/`mlp_out` is the convolution, and a head's or neuron's result at a
#:   position is not what it adds there, so W_O / W_out, `hook_result` and the per-head and
#:   per-neuron decompositions raise, naming it
ConvRole = Literal["q", "k", "v", "attn_out", "mlp_out"]


@dataclass(frozen=True)
class Proj:
    """Where to read (and edit) pre-rotary q or k: a module path in the block, and its layout."""

    module: str
    layout: Layout = "flat"


@dataclass(frozen=True)
class LatentKV:
    """Multi-head latent attention (DeepSeek V2/V3): q from one projection, keys and values
    expanded per head from a low-rank latent. Paths are relative to one decoder block.

    `q` outputs (batch, pos, heads * (nope + rope)): per head, a part without position and a
    rotated part. `kv_a` outputs (batch, pos, rank + rope): the latent, then one rotated key
    part shared by every head. `kv_b` expands the (normed) latent to (batch, pos, heads *
    (nope + v)): per head, the key part without position, then the value. `interleaved`: the
    rotation takes pairs of adjacent features and returns them as two halves (so pre-rotary q
    and k are read in that halves order, in which the rotation at position 0 is the identity).
    """

    q: str
    kv_a: str
    kv_b: str
    nope: int
    rope: int
    v: int
    rank: int
    interleaved: bool = False
    #: a norm the shared rotated key part passes before the rotation (Dots3 Note's
    #: `k_rope_only_layernorm`): that part of `hook_k` is read at its output, not at `kv_a`'s
    rope_k_norm: str | None = None
    #: per head, how many more features `q`'s output holds after the query: the input of the
    #: gate on attention's output (AXK2's `q_gate_proj`, `AttnGate` layout "q_gate_per_head")
    q_gate: int = 0


@dataclass(frozen=True)
class AttnGate:
    """A gate on attention's output: the output projection reads `z * act(g)` (elementwise),
    `g` read from `module`'s output (a block path) laid out as `layout`, plus `bias` (a block
    path of a per-head parameter (n_heads,), Beam's `gate_bias`) where there is one. `act` is the
    gate's nonlinearity ("sigmoid" or "softplus"). `hook_gate` is `act(g)` per feature of z."""

    module: str
    layout: GateLayout
    act: GateAct
    bias: str | None = None


@dataclass(frozen=True)
class LayerLayout:
    """One layer of a model whose layers differ (a hybrid): what mixes positions in it.

    `kind` "attention": the adapter's attention paths (`attn`, `attn_out`, q/k sources) hold;
    "mixer": a state-space, linear-attention or convolution module at `mixer` (block path) does
    the attention's job, and its output is `hook_mixer_out`; "mlp": nothing mixes positions,
    the layer is its norm (`ln1`, here the MLP's norm, so its points are `ln2.*`) and the
    adapter's MLP, which sits at `mixer` (Nemotron-H). `mixer_class` is the class name of what
    sits there (named in errors); `mlp` whether the layer has the adapter's MLP; `out` the
    module whose output a mixer layer adds to the stream when it is not the mixer itself (a
    norm on the mixer's output, LFM3's `post_operator_norm`): `hook_mixer_out` is read there.
    `beside` (an attention layer): a mixer (block path) that reads the same normalized stream
    as attention and whose output the block adds with attention's in the same step (Falcon-H1's
    `mamba`): its output is `hook_mixer_out`, so the layer has both attention's and the mixer's
    points, and `resid_pre + attn_out + mixer_out = resid_mid`. `norms` (a mixer layer whose
    norms sit elsewhere than the attention layers', OLMo-hybrid's pre-norm linear-attention
    layers beside post-norm attention ones): its own (ln1, ln2, mlp_out, resid_mid's module).
    `opaque` (a mixer layer): why the module at `mixer`, although it attends, has no attention
    points (JetMoE's mixture of attention heads, differential attention's two patterns per
    head): hooklens keeps it whole, as the layer's mixer, and asking for its attention points
    says this. "block": the whole block is kept whole (`_whole_blocks.py`): its only points are
    its input and output, and `opaque` says why the template could not take it apart.
    "skipped": a layer the model's text-only forward skips (`_skipped.py`): its output is its
    input, its only points are the stream's, and `opaque` says why it does not run.
    `attends_inside` (a "block" layer): the block calls the adapter's attention module (`attn`)
    on something other than the stream and adds nothing it outputs to the stream itself (a
    transformer block shared by several layers whose output feeds the layer's mixer, Zamba):
    the layer also has attention's internal points (q, k, v, scores, pattern, z), served at
    each call the layer makes, and none of what attention reads from or writes to the stream.
    """

    kind: Literal["attention", "mixer", "mlp", "block", "skipped"]
    mixer: str
    mixer_class: str
    mlp: bool = True
    out: str | None = None
    beside: str | None = None
    norms: tuple[str | None, str | None, str, str | None] | None = None
    opaque: str | None = None
    attends_inside: bool = False


def is_gated_norm(module: Any, names: tuple[str, str]) -> bool:
    """Whether `module` wraps a norm (child `names[0]`, no projection inside) and a gate
    computed from it (child `names[1]`, holding projections): `_names.GATED_NORM`."""
    norm, gate = (getattr(module, n, None) for n in names)
    if not isinstance(norm, torch.nn.Module) or not isinstance(gate, torch.nn.Module):
        return False
    linear = torch.nn.Linear
    return not any(isinstance(m, linear) for m in norm.modules()) and any(
        isinstance(m, linear) for m in gate.modules()
    )
