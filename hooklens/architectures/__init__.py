"""Adapters (see README.md here): one small declarative `ArchSpec` per family that needs one,
and the derivation of the others from the model's own structure (`_derive.py`)."""

from __future__ import annotations

from typing import Any

from .._errors import MSG_UNSUPPORTED, MSG_UNSUPPORTED_CONFIG, UnsupportedModelError
from . import (
    bloom,
    codegen,
    ctrl,
    dbrx,
    falcon,
    gemma2,
    gemma3,
    gpt2,
    gpt_bigcode,
    gpt_neo,
    gpt_neox,
    gpt_neox_japanese,
    gptj,
    llama,
    mistral,
    modernbert_decoder,
    mpt,
    openai_gpt,
    opt,
    persimmon,
    phi3,
    qwen2,
    qwen3,
    xglm,
    xlm,
)
from ._derive import derive
from ._encoder import derive_encoder, is_encoder
from ._no_blocks import looped_blocks
from ._seq2seq import derive_post_ln_decoder, is_post_ln_decoder, with_embeddings
from ._spec import ArchSpec, Proj, text_config
from ._split_layers import attach_layer_views, split_layers_reason
from ._towers import shared_walks
from ._two_streams import two_streams_reason
from ._whole_blocks import whole_blocks

#: every adapter; a module with `SPECS` has one per configuration variant (Falcon), tried in order
ADAPTERS: tuple[ArchSpec, ...] = tuple(
    spec
    for m in (
        gpt2,
        bloom,
        falcon,
        codegen,
        ctrl,
        gpt_bigcode,
        gpt_neo,
        gpt_neox,
        gpt_neox_japanese,
        gptj,
        mpt,
        dbrx,
        opt,
        openai_gpt,
        llama,
        mistral,
        modernbert_decoder,
        qwen2,
        qwen3,
        gemma2,
        gemma3,
        phi3,
        persimmon,
        xglm,
        xlm,
    )
    for spec in getattr(m, "SPECS", (m.SPEC,))
)
_BY_CLASS: dict[str, tuple[ArchSpec, ...]] = {}
for _spec in ADAPTERS:
    for _cls in _spec.hf_classes:
        _BY_CLASS[_cls] = (*_BY_CLASS.get(_cls, ()), _spec)


def supported_classes() -> list[str]:
    """Hugging Face causal-LM class names that have an adapter."""
    return sorted(_BY_CLASS)


def find_adapter(class_name: str) -> ArchSpec | None:
    """The (first) adapter for a Hugging Face model class name, or None."""
    return _BY_CLASS.get(class_name, (None,))[0]


def check_supported(class_name: str, config: Any) -> ArchSpec:
    """The explicit adapter for a model class, or a clear UnsupportedModelError."""
    specs = _BY_CLASS.get(class_name, ())
    if not specs:
        raise UnsupportedModelError(
            MSG_UNSUPPORTED.format(
                cls=class_name, supported=", ".join(supported_classes()), why="no adapter"
            )
        )
    failures = []
    config = text_config(config)  # a composite model's requirements are its language model's
    for spec in specs:  # the first variant whose configuration requirements hold
        failed = next(
            (req for req in spec.config_requirements if getattr(config, req[0], req[1]) != req[1]),
            None,
        )
        if failed is None:
            return spec
        attr, _, why = failed
        value = getattr(config, attr)
        failures.append(
            MSG_UNSUPPORTED_CONFIG.format(family=spec.family, why=why, attr=attr, value=value)
        )
    raise UnsupportedModelError(failures[0])


def adapter_for_model(hf_model: Any, opaque_attention: str | None = None) -> ArchSpec:
    """The explicit adapter for the model's class, else one derived from its structure (to be
    checked against its forward by the engine), else a clear UnsupportedModelError.
    `opaque_attention`: why the model's attention modules have no attention points (the check
    found it): the derived adapter keeps each whole, as its layer's mixer. A model whose layers
    are parallel lists of parts gets the layer views its adapter's paths name
    (`_split_layers.py`)."""
    class_name = type(hf_model).__name__
    if find_adapter(class_name) is not None:
        spec = check_supported(class_name, hf_model.config)
        if spec.layer_lists is not None:
            attach_layer_views(hf_model, spec)
        return spec
    split: str | None = None
    probed = False  # whether `split` was read (once: each reason probes the model)
    try:
        with shared_walks():  # the templates below ask for the same modules and blocks
            other = (
                derive_encoder
                if is_encoder(hf_model)
                else derive_post_ln_decoder
                if is_post_ln_decoder(hf_model)
                else None
            )
            if other is not None:
                if opaque_attention is not None:  # only `derive` keeps attention whole
                    raise UnsupportedModelError(opaque_attention)
                return other(hf_model)
            try:
                return with_embeddings(hf_model, derive(hf_model, opaque_attention))
            except UnsupportedModelError as exc:
                split = split_layers_reason(hf_model) or two_streams_reason(hf_model)
                probed = True
                if split is not None or not getattr(exc, "whole", True):
                    raise
                try:  # the stream between blocks may still be one tensor (checked at wrap)
                    return whole_blocks(hf_model, getattr(exc, "reason", str(exc)))
                except UnsupportedModelError:
                    raise exc from None
    except UnsupportedModelError as exc:
        # the guess failed: say why no guess could hold
        if not probed:
            split = split_layers_reason(hf_model) or two_streams_reason(hf_model)
        # Dory's recurrent section; not where the refusal was for the stream between blocks:
        # a forward may change such a model (RWKV rescales its weights at its first)
        probe = (
            not split and getattr(exc, "whole", True) and not getattr(exc, "runs_counted", False)
        )
        looped = looped_blocks(hf_model) if probe else None
        why: Any = exc
        if split:
            why = f"{class_name} cannot be wrapped: {split}"
        elif looped:
            why = f"{str(exc).rstrip('.')}; and {looped}"
        raise UnsupportedModelError(
            MSG_UNSUPPORTED.format(
                cls=class_name, supported=", ".join(supported_classes()), why=why
            )
        ) from None
    except Exception as exc:  # reading its config or modules raised (a per-layer config)
        raised = f"deriving its adapter raised {type(exc).__name__}: {str(exc).splitlines()[0]}"
        raise UnsupportedModelError(
            MSG_UNSUPPORTED.format(
                cls=class_name, supported=", ".join(supported_classes()), why=raised[:300]
            )
        ) from exc


def adapter_for_config(config: Any) -> ArchSpec | None:
    """The adapter for a config's declared `architectures`, or None."""
    for name in getattr(config, "architectures", None) or ():
        if name in _BY_CLASS:
            return _BY_CLASS[name][0]
    return None


__all__ = [
    "ADAPTERS",
    "ArchSpec",
    "Proj",
    "adapter_for_config",
    "adapter_for_model",
    "check_supported",
    "find_adapter",
    "supported_classes",
]
