"""`HookedModelConfig`: the dimensions and features of a wrapped model (`model.cfg`)."""

from __future__ import annotations

from dataclasses import FrozenInstanceError, dataclass, replace
from typing import Any, Literal

import torch
from torch import nn

from ..architectures._spec import ArchSpec, text_config


@dataclass(frozen=True)
class LayerDims:
    """One layer's head geometry and MLP width, where a model's layers differ."""

    n_kv_heads: int
    d_head: int
    d_head_qk: int
    d_mlp: int


@dataclass(frozen=True)
class HookedModelConfig:
    """What TransformerLens users expect in `model.cfg`, read from the HF config and modules."""

    family: str
    architecture: str
    model_name: str
    n_layers: int
    d_model: int
    n_heads: int
    n_kv_heads: int
    d_head: int
    d_mlp: int
    d_vocab: int
    n_ctx: int
    positional: Literal["learned", "rotary", "alibi", "relative", "none"]
    rotary_dim: int | None
    parallel_residual: bool
    norm: Literal["layernorm", "rmsnorm"]
    gated_mlp: bool
    act_fn: str | None
    dtype: torch.dtype
    device: torch.device
    #: mixture-of-experts MLPs: experts per layer and experts chosen per token (0 when dense)
    n_experts: int = 0
    top_k: int = 0
    #: the router's logits per token: `n_experts`, plus a router's classes that route to no
    #: expert (ZAYA's skip class, its last): 0 means `n_experts`; read `n_router_classes`
    n_router_classes_: int = 0
    #: width of one head's queries and keys, where it differs from `d_head` (the values' and
    #: z's width): multi-head latent attention. 0 means `d_head`; read `d_head_qk`.
    d_head_qk_: int = 0
    #: per layer, where the layers differ (Gemma 4's global layers have wider heads than its
    #: sliding ones): each layer's own (n_kv_heads, d_head, d_head_qk, d_mlp). Empty when every
    #: layer has the model-level values; read `layer(l)`.
    layer_dims: tuple[LayerDims, ...] = ()
    #: TransformerLens's weight processing applied at load ("fold_ln", "center_unembed")
    processing: tuple[str, ...] = ()

    @property
    def n_router_classes(self) -> int:
        """Width of `hook_router_logits`: the experts, and any class routing to none."""
        return self.n_router_classes_ or self.n_experts

    @property
    def d_head_qk(self) -> int:
        """Width of one head's q and k (`d_head` except in multi-head latent attention)."""
        return self.d_head_qk_ or self.d_head

    def layer(self, layer: int) -> HookedModelConfig:
        """This config with block `layer`'s own head and MLP widths (`n_kv_heads`, `d_head`,
        `d_head_qk`, `d_mlp`): the model-level values unless the layers differ."""
        if not self.layer_dims:
            return self
        dims = self.layer_dims[layer]
        return replace(
            self,
            n_kv_heads=dims.n_kv_heads,
            d_head=dims.d_head,
            d_head_qk_=dims.d_head_qk,
            d_mlp=dims.d_mlp,
            layer_dims=(),
        )

    @property
    def normalization_type(self) -> str:
        """TransformerLens spelling of `norm`: "LN" or "RMS", "LNPre" or "RMSPre" once the norms'
        weights are folded into the weights that read them (`fold_ln`)."""
        kind = "LN" if self.norm == "layernorm" else "RMS"
        return kind + "Pre" if "fold_ln" in self.processing else kind

    @property
    def positional_embedding_type(self) -> str:
        """TransformerLens spelling of `positional`: "standard", "rotary", "alibi" (or
        "relative", "none")."""
        return {"learned": "standard"}.get(self.positional, self.positional)


MSG_READ_ONLY = """model.cfg.{name} = ...: model.cfg describes the loaded model and is read-only
apart from `device`. {how}"""

#: How to get what setting a TransformerLens `cfg` field would do, by field.
_HOW: dict[str, str] = {
    "dtype": "Cast the model with model.to(torch.float16) (or another dtype).",
    "use_attn_result": "Use model.set_use_attn_result(True).",
    "use_split_qkv_input": "Use model.set_use_split_qkv_input(True).",
    "use_attn_in": "Use model.set_use_attn_in(True).",
    "use_hook_mlp_in": "Use model.set_use_hook_mlp_in(True).",
}


def _assign(self: HookedModelConfig, name: str, value: Any) -> None:
    """`cfg.device = ...` as in TransformerLens: it records where the model should go, and
    `model.move_model_modules_to_device()` moves it there (nothing moves before that call).
    Every other field raises, naming the hooklens call that does what setting it would."""
    if name != "device":
        how = _HOW.get(name, "Load or wrap the model again to change it.")
        raise FrozenInstanceError(MSG_READ_ONLY.format(name=name, how=how))
    try:
        device = torch.device(value)
    except (TypeError, RuntimeError) as exc:
        raise ValueError(
            f'model.cfg.device = {value!r}: give a device ("cuda", "cuda:1", "cpu", '
            "torch.device(...)), then call model.move_model_modules_to_device()"
        ) from exc
    object.__setattr__(self, "device", device)


# frozen dataclasses build instances with object.__setattr__, so `__init__` and
# `dataclasses.replace` are unaffected; only a user's assignment comes here
HookedModelConfig.__setattr__ = _assign  # type: ignore[method-assign,assignment]


def _logits_width(hf_model: nn.Module, spec: Any, config: Any) -> int:
    """The logits' width: the LM head's outputs, less a padding of the vocabulary the model
    cuts off (`ArchSpec.logits_vocab`)."""
    width = _out_features(hf_model.get_submodule(spec.unembed))
    kept = getattr(config, spec.logits_vocab, None) if spec.logits_vocab else None
    return min(width, kept) if isinstance(kept, int) and kept > 0 else width


def _out_features(module: nn.Module) -> int:
    for attr in ("out_features", "nf"):  # nn.Linear, transformers' Conv1D
        value = getattr(module, attr, None)
        if isinstance(value, int):
            return value
    weight = getattr(module, "weight", None)
    if isinstance(weight, torch.Tensor):
        return int(weight.shape[0])
    raise TypeError(f"cannot tell the output size of {type(module).__name__}")


_MOE_WIDTH = (
    "moe_intermediate_size", "expert_intermediate_size", "intermediate_size", "ffn_hidden_size"
)  # fmt: skip
_N_EXPERTS = ("num_local_experts", "num_experts", "n_routed_experts", "moe_num_experts")
_TOP_K = ("num_experts_per_tok", "moe_topk", "top_k", "moe_top_k")
#: a router's attribute counting its classes, where more than its experts (ZAYA's skip class)
_ROUTER_CLASSES = ("num_router_classes",)
#: a sub-config that holds the MLP's dimensions (DBRX's `ffn_config`)
_MLP_CONFIGS = ("ffn_config",)


def _first_attr(config: Any, names: tuple[str, ...]) -> Any:
    """The first set attribute of `names` in `config`, else in its MLP sub-config."""
    subs = [getattr(config, s) for s in _MLP_CONFIGS if getattr(config, s, None) is not None]
    for source in (config, *subs):
        for name in names:
            value = getattr(source, name, None)
            if value:
                return value
    return None


def _int_attr(module: nn.Module, names: tuple[str, ...]) -> int:
    for name in names:
        value = getattr(module, name, None)
        if isinstance(value, int) and not isinstance(value, bool) and value > 0:
            return value
    return 0


def _layer_dims(
    blocks: Any, spec: ArchSpec, config: Any, n_heads: int, base: LayerDims
) -> tuple[LayerDims, ...]:
    """Each layer's widths read from its own modules (attention's `head_dim`, a separate
    `v_head_dim`, `num_key_value_groups`; the MLP's input projection), where they differ
    between layers; () when every attending layer (and every dense MLP) has the same."""
    attending = spec.internals_layers(len(blocks))
    if spec.latent_kv is not None or not attending:
        return ()
    heads: dict[int, tuple[int, int, int]] = {}
    for i in attending:
        attn = blocks[i].get_submodule(spec.attn)
        width = _int_attr(attn, ("head_dim", "head_size")) or base.d_head_qk
        groups = _int_attr(attn, ("num_key_value_groups",))
        n_kv = n_heads // groups if groups else base.n_kv_heads
        heads[i] = (n_kv, _int_attr(attn, ("v_head_dim",)) or width, width)
    mlps: dict[int, int] = {}
    for i in range(len(blocks)):
        if "dense_mlp" in spec.layer_features(config, i):
            width = _out_features(blocks[i].get_submodule(spec.mlp_in))
            mlps[i] = width // 2 if spec.mlp_gate_up_fused else width
    if len(set(heads.values())) <= 1 and len(set(mlps.values())) <= 1:
        return ()
    first = heads[attending[0]]
    return tuple(
        LayerDims(*heads.get(i, first), mlps.get(i, base.d_mlp)) for i in range(len(blocks))
    )


def build_config(
    hf_model: nn.Module, spec: ArchSpec, model_name: str, device: torch.device
) -> HookedModelConfig:
    """Read the dimensions from the HF config, checking them against the modules."""
    config: Any = text_config(hf_model.config)
    blocks: Any = hf_model.get_submodule(spec.blocks)
    # the layers with attention's points (a state-space model has none)
    attending = spec.internals_layers(len(blocks))
    attn = blocks[attending[0]].get_submodule(spec.attn) if attending else None
    n_heads = int(getattr(config, "num_attention_heads", 0) or 0) if attending else 0
    d_model = int(config.hidden_size)
    d_head = int(getattr(attn, "head_dim", None) or getattr(attn, "head_size", None) or 0)
    d_head = d_head or int(getattr(config, "head_dim", None) or d_model // max(n_heads, 1))
    n_kv = int(spec.n_kv_heads(config) or n_heads) if attending else 0  # no layer attends
    latent = spec.latent_kv
    d_head_qk_ = 0
    if latent is not None:  # keys and values are expanded to every head
        d_head, n_kv = latent.v, n_heads
        d_head_qk_ = latent.nope + latent.rope
    n_experts = top_k = 0
    if spec.moe_experts is not None:
        n_experts = int(_first_attr(config, _N_EXPERTS) or 0)
        top_k = int(_first_attr(config, _TOP_K) or 0)
    n_router = 0
    if spec.moe_router is not None:  # classes routing to no expert (ZAYA's skip class)
        moe_at = next((i for i in range(len(blocks)) if "moe" in spec.layer_features(config, i)), 0)
        router = blocks[moe_at].get_submodule(spec.moe_router)
        n_router = next((int(getattr(router, a)) for a in _ROUTER_CLASSES if hasattr(router, a)), 0)
    if spec.moe_experts is not None and spec.moe_layers is None:
        d_mlp = int(_first_attr(config, _MOE_WIDTH) or 0)  # the experts' width, from the config
    else:  # the dense layers' width (0 when no layer has an MLP)
        dense = [i for i in range(len(blocks)) if "dense_mlp" in spec.layer_features(config, i)]
        d_mlp = _out_features(blocks[dense[0]].get_submodule(spec.mlp_in)) if dense else 0
        if spec.mlp_gate_up_fused:
            d_mlp //= 2
    rotary_dim: int | None = None
    if spec.positional == "rotary":
        rope = getattr(config, "rope_parameters", None) or {}
        factor = rope.get("partial_rotary_factor") if isinstance(rope, dict) else None
        rotary_dim = int(getattr(config, "rotary_dim", None) or d_head * (factor or 1.0))
        if latent is not None:
            rotary_dim = latent.rope
    base = LayerDims(n_kv, d_head, d_head_qk_ or d_head, d_mlp)
    layer_dims = _layer_dims(blocks, spec, config, n_heads, base)
    if layer_dims:  # the model-level widths are the first attending layer's
        first = layer_dims[attending[0]]
        n_kv, d_head, d_head_qk_ = first.n_kv_heads, first.d_head, first.d_head_qk
    act = None
    for attr in ("hidden_act", "hidden_activation", "activation_function"):
        if isinstance(getattr(config, attr, None), str):
            act = getattr(config, attr)
            break
    try:
        dtype = next(hf_model.parameters()).dtype
    except StopIteration:  # pragma: no cover - a model without parameters
        dtype = torch.float32
    return HookedModelConfig(
        family=spec.family,
        architecture=type(hf_model).__name__,
        model_name=model_name,
        n_layers=len(hf_model.get_submodule(spec.blocks)),  # type: ignore[arg-type]
        d_model=d_model,
        n_heads=n_heads,
        n_kv_heads=n_kv,
        d_head=d_head,
        d_mlp=d_mlp,
        d_vocab=_logits_width(hf_model, spec, config),
        n_ctx=int(getattr(config, "max_position_embeddings", 0) or 0),
        positional=spec.positional,
        rotary_dim=rotary_dim,
        parallel_residual=spec.is_parallel(config),
        norm=spec.norm,
        gated_mlp="gated_mlp" in spec.features(config),
        act_fn=act,
        dtype=dtype,
        device=device,
        n_experts=n_experts,
        top_k=top_k,
        n_router_classes_=n_router if n_router != n_experts else 0,
        d_head_qk_=d_head_qk_ if d_head_qk_ != d_head else 0,
        layer_dims=layer_dims,
    )
