"""The one rule for arguments: a keyword hooklens does not implement raises, naming it.

`@checked` wraps a public function or method: before the call, every keyword argument is checked
against the names the function accepts (plus, for wrappers such as `run_with_hooks`, the names of
the methods it passes keywords on to). An unknown name raises `ArgumentError` (a `TypeError`)
with the close matches, and for names TransformerLens has but hooklens does not implement, what
to write instead. Nothing is passed through to transformers to be dropped.
"""

from __future__ import annotations

import difflib
import functools
import inspect
from collections.abc import Callable
from typing import Any, TypeVar

from .._errors import ArgumentError

F = TypeVar("F", bound=Callable[..., Any])

# TransformerLens (or transformers) keywords with no hooklens implementation -> what to do.
NOT_IMPLEMENTED: dict[str, str] = {
    "padding_side": "hooklens pads a batch of texts on the right (the causal mask keeps padding "
    "from affecting real tokens); pad yourself and pass ids with attention_mask= for another "
    "layout",
    "start_at_layer": "run from a layer with hooklens.patching (it resumes the forward at a "
    "layer), or patch blocks.{l}.hook_resid_pre with a hook",
    "lang_ids": "X-MOD's language adapters run for its config's default_language in every "
    "hooklens forward; choose another with model.hf_model.set_default_language(lang)",
    "tokens": "pass the token ids as the input; hooklens computes the loss from them",
    "shortformer_pos_embed": "no family hooklens wraps uses shortformer position embeddings",
    "past_kv_cache": "use generate(..., use_past_kv_cache=True); a TransformerLens KV cache "
    "object cannot drive a Hugging Face model",
    "return_cache_object": "the cache is always an ActivationCache; dict(cache) is a plain dict",
    "level": "hooklens hook contexts nest without levels; reset_hooks() removes every "
    "non-permanent hook",
    "output_attentions": "cache blocks.{l}.attn.hook_pattern with run_with_cache",
    "output_hidden_states": "cache the hook_resid_pre / hook_resid_post points",
    "truncate": "hooklens raises for a prompt longer than the context (model.cfg.n_ctx); "
    "slice the tokens, e.g. tokens[:, -model.cfg.n_ctx:]",
    "use_cache": "the forward never builds a KV cache; generate(use_past_kv_cache=) does",
    # transformer_lens.patching's generic_activation_patch options
    "index_axis_names": "the get_act_patch_* functions patch every cell of their activation; for "
    "a subset use hl.patching.sweep(model, clean, corrupted, metric, point=..., layers=..., "
    "positions=..., heads=...)",
    "index_df": "the get_act_patch_* functions patch every cell of their activation; for chosen "
    "cells use hl.patching.sweep(..., layers=..., positions=..., heads=...) or "
    "hl.patching.patch(model, corrupted, clean_cache, [(name, {'pos': p, 'head': h})])",
    "return_index_df": "the result is indexed by its axes (e.g. [n_layers, pos]); "
    "hl.patching.sweep returns a PatchingResult with its rows and columns",
}

MSG_UNKNOWN_ARG = """{func}() got an argument it does not implement: {name}={value}.{hint}
hooklens never ignores an argument. {func}() accepts: {accepted}."""


def accepted_names(fn: Callable[..., Any]) -> list[str]:
    """The names ``fn`` takes by keyword (not ``self``, not ``**kwargs``)."""
    params = inspect.signature(fn).parameters.values()
    kinds = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    return [p.name for p in params if p.kind in kinds and p.name != "self"]


def check_names(func: str, given: dict[str, Any], accepted: list[str]) -> None:
    """Raise `ArgumentError` for the first keyword in `given` that is not in `accepted`."""
    for name, value in given.items():
        if name in accepted:
            continue
        close = difflib.get_close_matches(name, accepted, n=3, cutoff=0.6)
        # e.g. patching_metric= where the function takes metric=
        close = close or [a for a in accepted if len(a) > 2 and (a in name or name in a)][:3]
        if name in NOT_IMPLEMENTED:
            hint = f" hooklens does not implement {name!r}: {NOT_IMPLEMENTED[name]}."
        elif close:
            hint = f" Did you mean {', '.join(repr(c) for c in close)}?"
        else:
            hint = ""
        shown = repr(value)
        shown = shown if len(shown) <= 40 else shown[:37] + "..."
        raise ArgumentError(
            MSG_UNKNOWN_ARG.format(
                func=func, name=name, value=shown, hint=hint, accepted=", ".join(accepted)
            )
        )


def checked(*also: str) -> Callable[[F], F]:
    """Decorator: reject unknown keyword arguments of a method (see the module docstring).

    `also` names methods of the same class that receive the wrapper's `**kwargs` (e.g.
    `run_with_hooks` passes them to `forward`); their names are accepted too.
    """

    def wrap(fn: F) -> F:
        own = accepted_names(fn)
        # A constructor is named by its class, as the caller wrote it: Patcher(), not __init__().
        name = fn.__qualname__.rsplit(".", 2)[-2] if fn.__name__ == "__init__" else fn.__name__
        resolved: dict[type, list[str]] = {}

        @functools.wraps(fn)
        def inner(*args: Any, **kwargs: Any) -> Any:
            if kwargs:
                accepted = own
                if also and args:
                    cls = type(args[0])
                    if cls not in resolved:
                        names = list(own)
                        for other in also:
                            names += [
                                n for n in accepted_names(getattr(cls, other)) if n not in names
                            ]
                        resolved[cls] = names
                    accepted = resolved[cls]
                check_names(name, kwargs, accepted)
            return fn(*args, **kwargs)

        return inner  # type: ignore[return-value]

    return wrap


# TransformerLens's weight processing on load that hooklens does not do (fold_ln and the others
# are applied by `loading.py`); given as False, it means what hooklens does.
_TL_PROCESSING = ("refactor_factored_attn_matrices",)
_TL_LOAD_ONLY = {
    "default_prepend_bos": "pass prepend_bos= to each call (to_tokens, forward, run_with_cache)",
    "default_padding_side": "hooklens pads a batch of texts on the right",
    "n_devices": 'use device_map="auto" (with accelerate) to spread the model over devices',
    "move_to_device": "the model stays where transformers puts it; pass device= to move it",
    "first_n_layers": "load the whole model; stop_at_layer= runs only the first layers",
    "hf_config": "pass an already loaded model as hf_model=",
    "fold_attn": "hooklens uses the weights as loaded",
}

MSG_TL_PROCESSING = """from_pretrained({name}={value!r}): hooklens does not refactor the
attention weights at load (fold_ln, center_writing_weights, center_unembed and fold_value_biases
it applies as TransformerLens does). Pass {name}=False (or leave it out); model.QK and model.OV
are the products that refactoring leaves unchanged."""


def check_load_kwargs(hf_kwargs: dict[str, Any], wrapping: bool, shared: tuple[str, ...]) -> None:
    """Reject TransformerLens-only `from_pretrained` keywords (in place: drop processing flags
    given as False, which is what hooklens does), and keywords with no model to load."""
    for name in _TL_PROCESSING:
        if name in hf_kwargs:
            if hf_kwargs[name]:
                raise ArgumentError(MSG_TL_PROCESSING.format(name=name, value=hf_kwargs[name]))
            del hf_kwargs[name]
    for name in hf_kwargs:
        if name in _TL_LOAD_ONLY:
            raise ArgumentError(
                f"from_pretrained({name}=...) is a TransformerLens option hooklens does not "
                f"implement: {_TL_LOAD_ONLY[name]}."
            )
    unused = [n for n in hf_kwargs if n not in shared]
    if wrapping and unused:
        raise ArgumentError(
            f"from_pretrained(hf_model=..., {', '.join(f'{n}=' for n in unused)}): with hf_model "
            "the model is already loaded, so these transformers loading options would be "
            f"ignored. Pass them to transformers when loading it, or drop them (only "
            f"{', '.join(shared)} apply, to the tokenizer)."
        )
