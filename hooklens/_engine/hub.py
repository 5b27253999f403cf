"""Before loading by Hub name: is the model in the local cache, and can the Hub be reached?

Without a network, transformers retries for most of a minute and then raises an OSError that
says nothing about what works offline. One short request (or ``HF_HUB_OFFLINE``) tells the same
in a second, so hooklens fails fast with the ways to load a model that need no Hub.
"""

from __future__ import annotations

import os
from typing import Any

#: seconds the reachability request may take before the Hub counts as unreachable
PROBE_TIMEOUT_S = 3.0

MSG_NO_HUB = """hooklens cannot load {name!r}: it is not a local folder, it is not in the Hugging \
Face cache, and {reason}.
What works without the Hub:
    hl.demo_model()                                   # the small model shipped in hooklens
    hl.HookedModel.from_pretrained("path/to/folder")  # a folder written by save_pretrained
    hl.HookedModel.from_pretrained("path/to/folder", gguf_file="model.gguf")  # a GGUF file
    hl.HookedModel.from_pretrained("name", hf_model=model, tokenizer=tokenizer)  # loaded by you
Once online, from_pretrained({name!r}) downloads it into the cache for later offline use."""

_OFFLINE_REASON = "HF_HUB_OFFLINE is set (offline mode)"
_UNREACHABLE_REASON = "the Hub at {endpoint} cannot be reached ({error})"


def _is_true(value: str | None) -> bool:
    return (value or "").strip().upper() in {"1", "ON", "YES", "TRUE"}


def offline_mode() -> bool:
    """``HF_HUB_OFFLINE`` (or ``TRANSFORMERS_OFFLINE``), as huggingface_hub read it at import
    or as the environment says now."""
    from huggingface_hub import constants

    env = os.environ
    return bool(constants.HF_HUB_OFFLINE) or _is_true(
        env.get("HF_HUB_OFFLINE") or env.get("TRANSFORMERS_OFFLINE")
    )


def _is_cached(name: str, hf_kwargs: dict[str, Any]) -> bool | None:
    """True when the file a load starts from is in the cache, None when `name` is no Hub id."""
    from huggingface_hub import try_to_load_from_cache

    filename = hf_kwargs.get("gguf_file") or "config.json"
    try:
        found = try_to_load_from_cache(
            name, filename, cache_dir=hf_kwargs.get("cache_dir"), revision=hf_kwargs.get("revision")
        )
    except Exception:  # not a valid repo id: transformers reports what is wrong with the path
        return None
    return isinstance(found, str)


def _unreachable(endpoint: str) -> str | None:
    """None when the Hub answers a HEAD request in time, else why not."""
    from huggingface_hub import get_session

    try:
        get_session().head(endpoint, timeout=PROBE_TIMEOUT_S)
    except Exception as exc:  # DNS failure, refused, timeout, proxy error...
        first_line = (str(exc).splitlines() or [""])[0][:160]
        return f"{type(exc).__name__}: {first_line}" if first_line else type(exc).__name__
    return None


def hub_kwargs(name: str, hf_kwargs: dict[str, Any]) -> dict[str, Any]:
    """`hf_kwargs` for loading `name`, or an OSError with what works offline.

    A local path, or ``local_files_only=True``, is left to transformers as it is. A Hub id in
    the cache loads from the cache with ``local_files_only=True`` when the Hub is offline or
    unreachable (the files are the same; only the retries are skipped). A Hub id not in the
    cache raises at once when offline or unreachable.
    """
    if os.path.exists(name) or hf_kwargs.get("local_files_only"):
        return hf_kwargs
    cached = _is_cached(name, hf_kwargs)
    if cached is None:
        return hf_kwargs
    from huggingface_hub import constants

    if offline_mode():
        reason = _OFFLINE_REASON
    else:
        error = _unreachable(constants.ENDPOINT)
        if error is None:
            return hf_kwargs
        reason = _UNREACHABLE_REASON.format(endpoint=constants.ENDPOINT, error=error)
    if cached:
        return {**hf_kwargs, "local_files_only": True}
    raise OSError(MSG_NO_HUB.format(name=name, reason=reason))
