"""`HookedModel.from_pretrained`: load or adopt a Hugging Face model, and find its tokenizer."""

from __future__ import annotations

import os
import warnings
from typing import Any

import torch
from torch import nn

from .._errors import MSG_TOKENIZER_WARNING, ArgumentError, NoTokenizerWarning
from ..architectures import adapter_for_model
from .fold import PROCESSING, process
from .hub import hub_kwargs
from .kwargs import check_load_kwargs
from .ungroup import ungroup_kv_heads

#: keyword arguments that also apply to the tokenizer
_SHARED = ("gguf_file", "revision", "cache_dir", "local_files_only", "trust_remote_code", "token")


def _resolve_dtype(dtype: torch.dtype | str | None) -> torch.dtype | str | None:
    if isinstance(dtype, str) and dtype != "auto":
        return getattr(torch, dtype.replace("torch.", ""))
    return dtype


def load_tokenizer(name_or_path: str, hf_model: nn.Module, hf_kwargs: dict[str, Any]) -> Any:
    """The tokenizer for `name_or_path` (or the model's own path), or None after one warning."""
    from transformers import AutoTokenizer

    kwargs = {k: hf_kwargs[k] for k in _SHARED if k in hf_kwargs}
    candidates = [name_or_path]
    own = getattr(hf_model.config, "_name_or_path", "")
    if own and own != name_or_path and os.path.isdir(own):
        candidates.append(own)
    error: Exception | None = None
    for candidate in candidates:
        try:
            return AutoTokenizer.from_pretrained(candidate, **hub_kwargs(candidate, kwargs))
        except Exception as exc:  # offline, no files, no tokenizer in the folder...
            error = exc
    reason = f"{type(error).__name__}: {str(error).splitlines()[0][:200]}" if error else "?"
    warnings.warn(
        MSG_TOKENIZER_WARNING.format(name=name_or_path, error=reason), NoTokenizerWarning, 3
    )
    return None


MSG_WRAPPED = """{option}=True with hf_model=: the option rewrites the weights of the model
it loads, and would change the model you passed. Load by name or path without hf_model=, or wrap
your model without the option."""


def load(
    name_or_path: str,
    hf_model: nn.Module | None,
    tokenizer: Any,
    device: str | torch.device | None,
    dtype: torch.dtype | str | None,
    device_map: str | dict[str, Any] | None,
    ungroup: bool,
    hf_kwargs: dict[str, Any],
) -> tuple[nn.Module, Any, tuple[str, ...]]:
    """(hf_model, tokenizer, the processing applied to it) for `HookedModel.from_pretrained`
    (which see). The processing (`ungroup.py`, `fold.py`) rewrites the model's weights, so it is
    only applied to a model loaded here."""
    hf_kwargs = dict(hf_kwargs)
    asked = [name for name in PROCESSING if hf_kwargs.pop(name, False)]
    asked = (["ungroup_grouped_query_attention"] if ungroup else []) + asked
    if asked and hf_model is not None:
        raise ArgumentError(MSG_WRAPPED.format(option=asked[0]))
    check_load_kwargs(hf_kwargs, wrapping=hf_model is not None, shared=_SHARED)
    dtype = _resolve_dtype(dtype)
    if hf_model is None:
        from transformers import AutoModelForCausalLM

        # Fails in a second, with what works instead, when the Hub is needed and out of reach.
        hf_kwargs = hub_kwargs(name_or_path, hf_kwargs)
        kwargs = dict(hf_kwargs)
        if dtype is not None:
            kwargs["dtype"] = dtype
        if device_map is not None:
            kwargs["device_map"] = device_map
        hf_model = AutoModelForCausalLM.from_pretrained(name_or_path, **kwargs)
        hf_model.eval()
    elif dtype is not None and dtype != "auto":
        hf_model.to(dtype)  # converts in place, only when asked
    if device is not None and device_map is None:
        hf_model.to(device)
    applied: tuple[str, ...] = ()
    if asked:
        spec = adapter_for_model(hf_model)
        if ungroup:
            ungroup_kv_heads(hf_model, spec)
        applied = process(hf_model, spec, asked)
    if tokenizer is None:
        tokenizer = load_tokenizer(name_or_path, hf_model, hf_kwargs)
    return hf_model, tokenizer, applied
