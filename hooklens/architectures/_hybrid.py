"""The layers of a hybrid: which attend, and which mix positions another way.

Hybrids (Jamba, Bamba, Qwen3-Next, OLMo-hybrid, LFM2, ...) and state-space models (Mamba) put,
in some or all layers, a state-space, linear-attention or convolution module where attention
sits. `hybrid_layers` reads each block's kind from its modules: an attention module (a child
with one of the attention names that has q/k/v projections), else a mixer (one of the mixer
names, or an attention-named child without a query projection, e.g. RWKV's time mixing). When
the config lists the layers' kinds (`layer_types`, `layers_block_type`, `block_types`), each
layer's modules must agree with it; a layer the template cannot describe (a mixer beside a
module that does not attend, or a layer that is only an MLP where the config does not say
so) is refused, naming the layer and what it holds. A mixer beside attention, reading the same
normalized stream (Falcon-H1's `mamba` next to `self_attn`), is the attention layer's `beside`.
"""

from __future__ import annotations

from typing import Any, Literal

from torch import nn

from .._errors import UnsupportedModelError
from ._spec import LayerLayout

#: Children that mix positions in place of attention, in order of preference.
MIXERS = (
    "mamba", "mixer", "linear_attn", "conv", "temporal_block", "linear_attention", "mlstm_layer",
)  # fmt: skip
#: An MLP whose projections sit in the block itself (OPT-style).
IN_BLOCK_MLP = ("fc1", "fc2")
#: Config attributes that list each layer's kind.
KIND_LISTS = ("layers_block_type", "layer_types", "block_types")
#: Kinds (as configs spell them) of layers that attend, and of layers that mix another way.
ATTENDING = ("attention", "full_attention", "sliding_attention", "chunked_attention")
MIXING = ("mamba", "linear_attention", "conv", "recurrent", "ssm", "mamba2")
#: Children of an attention module that project its queries (alone or fused, or the low-rank
#: start of multi-head latent attention's): an attention-named module with none is a mixer.
QUERY = ("q_proj", "qkv_proj", "q_a_proj", "q_b_proj", "query", "query_key_value", "Wqkv")
#: A transformer block shared by several layers, whose output feeds a layer's mixer's input
#: rather than the stream (Zamba, Zamba 2).
SHARED_BLOCKS = ("shared_transformer", "shared_transf")
#: Kinds of layers that are only an MLP (or a mixture of experts) in the mixer's place.
MLP_ONLY = ("mlp", "moe")


def _is_attention(module: nn.Module) -> bool:
    """Whether `module` projects q, k and v (and so is attention, not another mixer)."""
    names = {n for n, _ in module.named_children()}
    return {"q_proj", "k_proj", "v_proj"} <= names or "qkv_proj" in names


def _kinds_from_config(text: Any, n_layers: int) -> list[str] | None:
    for attr in KIND_LISTS:
        kinds = getattr(text, attr, None)
        if isinstance(kinds, list | tuple) and len(kinds) == n_layers:
            return [str(k) for k in kinds]
    return None


def hybrid_layers(
    blocks: list[nn.Module],
    text: Any,
    attn_names: tuple[str, ...],
    mlp_names: tuple[str, ...],
    opaque: str | None = None,
) -> tuple[str | None, tuple[LayerLayout, ...] | None]:
    """(the attention's path in the blocks that attend, the layers' layouts); the layouts are
    None when every layer is an attention layer with an MLP (not a hybrid). `opaque`: why the
    attention modules have no attention points (`LayerLayout.opaque`): each is kept whole, as
    its layer's mixer."""
    kinds = _kinds_from_config(text, len(blocks))
    layouts: list[LayerLayout] = []
    for i, block in enumerate(blocks):
        attn = next((n for n in attn_names if isinstance(getattr(block, n, None), nn.Module)), None)
        mixer = next((n for n in MIXERS if isinstance(getattr(block, n, None), nn.Module)), None)
        mlp = any(isinstance(getattr(block, n, None), nn.Module) for n in mlp_names) or all(
            isinstance(getattr(block, n, None), nn.Module) for n in IN_BLOCK_MLP
        )
        beside = None
        if attn is not None and mixer is not None:
            if not _is_attention(block.get_submodule(attn)):
                raise UnsupportedModelError(
                    f"layer {i} ({type(block).__name__}) has a mixer ({mixer}) beside a module "
                    f"named {attn} without q/k/v projections, which the template does not "
                    "describe"
                )
            beside, mixer = mixer, None  # both read ln1's output, the block adds both (Falcon-H1)
        path = attn or mixer
        if path is None:
            names = ", ".join(n for n, _ in block.named_children())
            raise UnsupportedModelError(
                f"layer {i} ({type(block).__name__}) has neither attention "
                f"({', '.join(attn_names)}) nor another mixer ({', '.join(MIXERS)}): {names}"
            )
        module = block.get_submodule(path)
        cls = type(module).__name__
        unknown = (
            []
            if mlp  # only asked without a known MLP: a walk of every child's parameters
            else [
                n
                for n, child in block.named_children()
                if n != path and "norm" not in n and any(True for _ in child.parameters())
            ]
        )
        if unknown:  # an MLP under a name the template does not know
            raise UnsupportedModelError(
                f"layer {i} ({type(block).__name__}) has no MLP ({', '.join(mlp_names)}) but "
                f"holds {', '.join(unknown)}"
            )
        kind = kinds[i] if kinds is not None else None
        if kind in MLP_ONLY and mixer is not None and not mlp:  # Nemotron-H's MLP layers
            layouts.append(LayerLayout("mlp", path, cls, True))
            continue
        if kind is not None and kind not in ATTENDING + MIXING:
            if mixer is None:  # an attention layer whatever its config calls it
                kind = None
            else:
                raise UnsupportedModelError(
                    f"layer {i} is a {kind!r} layer (by its config) holding {cls}, which the "
                    "template does not describe"
                )
        # the config's word where it has one, else the modules': an attention-named child with
        # a query projection (RWKV's `attention` has none: a recurrent mixer), or a mixer-named
        # child with q/k/v projections (Nemotron-H's attention layers)
        queries = any(isinstance(getattr(module, n, None), nn.Module) for n in QUERY)
        attends = (
            kind in ATTENDING
            if kind is not None
            else (attn is not None and queries) or _is_attention(module)
        )
        whole = opaque if attn is not None and path == attn else None
        kind_of: Literal["attention", "mixer"] = "attention" if attends and not whole else "mixer"
        layouts.append(LayerLayout(kind_of, path, cls, mlp, beside=beside, opaque=whole))
    paths = {lay.mixer for lay in layouts if lay.kind == "attention"}
    if len(paths) > 1:
        raise UnsupportedModelError(f"its attention sits at different paths ({sorted(paths)})")
    if all(lay.kind == "attention" and lay.mlp and lay.beside is None for lay in layouts):
        return next(iter(paths), None), None
    return next(iter(paths), None), tuple(layouts)


MSG_SHARED = (
    "layer {i} ({cls}) runs a transformer block shared with other layers ({name}, over the "
    "stream and the token embeddings together) and adds its projected output to its Mamba "
    "mixer's input, not to the residual stream, so that attention neither reads the stream "
    "through the layer's norm nor writes to it: the template's attention points (and ln1 as "
    "the norm of hook_resid_pre) do not describe it"
)


def shared_block(block: nn.Module, i: int) -> str | None:
    """Why layer `i` cannot be described when it runs a shared transformer block (Zamba), or
    None."""
    name = next((n for n in SHARED_BLOCKS if isinstance(getattr(block, n, None), nn.Module)), None)
    return MSG_SHARED.format(i=i, cls=type(block).__name__, name=name) if name else None
