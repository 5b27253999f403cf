"""Every causal-LM type of the installed transformers, tried as a user would: a tiny random model.

`survey()` builds a tiny config of each type in `MODEL_FOR_CAUSAL_LM_MAPPING_NAMES` (2 layers,
width 64, vocabulary 128), runs the HF model, saves it, loads it with
`HookedModel.from_pretrained` and records the outcome: wrapped (by an explicit or a derived
adapter), not wrapped (with hooklens's reason), or cannot run here (with the model's own error).
The family table of README.md is rendered from it (`python -m hooklens.architectures._registry`),
and the registry test asserts the wrapped models' points on the same outcomes.
"""

from __future__ import annotations

import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import torch

from ._tiny import VOCAB, tiny_config

#: A tiny config bigger than this did not shrink (some key is spelled differently).
MAX_PARAMS = 4_000_000
Status = Literal["wrapped", "not wrapped", "cannot run"]


#: The adapter of a type wrapped with its blocks kept whole (`_whole_blocks.py`).
STREAM_ONLY = "residual stream only"
#: The adapter of a type whose residual stream is several parallel streams: its blocks' parts
#: have their points, the stream none (`ArchSpec.streams`).
PARTS_ONLY = "blocks' parts only"
#: The adapters of types wrapped with some of the points only.
PARTIAL = (STREAM_ONLY, PARTS_ONLY)


@dataclass(frozen=True)
class Outcome:
    """What happened to one registry type. `adapter` is "explicit" or "derived" when wrapped,
    or `STREAM_ONLY` (with `reason`: why no more points) when its blocks are kept whole, or
    `PARTS_ONLY` (with `reason`: its several streams) when only its blocks' parts have points."""

    model_type: str
    class_name: str
    status: Status
    reason: str = ""
    adapter: str = ""


def causal_lm_types() -> dict[str, str]:
    """model type -> causal-LM class name, from the installed transformers."""
    from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING_NAMES

    return dict(MODEL_FOR_CAUSAL_LM_MAPPING_NAMES)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0][:160] if text else ''}"


def _sharpen(model: torch.nn.Module) -> None:
    """Larger random weights than HF's init (std 0.02 makes attention near uniform). A frozen
    embedding table (sinusoidal positions: Pegasus's, RoFormer's rotary angles) keeps the
    values the model computed, as its checkpoints do."""
    fixed = {
        id(m.weight)
        for m in model.modules()
        if isinstance(m, torch.nn.Embedding) and not m.weight.requires_grad
    }
    with torch.no_grad():
        for name, p in model.named_parameters():
            if id(p) in fixed:
                continue
            if p.ndim >= 2:  # matrices, and experts' stacked matrices
                p.normal_(0, 0.2)
            elif "norm" in name or "ln" in name:
                p.uniform_(0.5, 1.5) if p.mean() > 0.5 else p.uniform_(-0.3, 0.3)


def build(model_type: str, folder: Path, seed: int = 0) -> Outcome | None:
    """Save a tiny random model of `model_type` in `folder`; an Outcome when it cannot run."""
    from transformers import AutoModelForCausalLM

    cls_name = causal_lm_types()[model_type]
    try:
        config = tiny_config(model_type)
        with torch.device("meta"):
            size = sum(p.numel() for p in AutoModelForCausalLM.from_config(config).parameters())
        if size > MAX_PARAMS:
            why = f"its tiny config still has {size:,} parameters (a size key is not shrunk)"
            return Outcome(model_type, cls_name, "cannot run", why)
        torch.manual_seed(seed)
        model = AutoModelForCausalLM.from_config(config).eval()
        _sharpen(model)
        with torch.no_grad():
            model(input_ids=torch.randint(3, VOCAB, (1, 6)), use_cache=False)
        model.save_pretrained(folder)
        if type(model.config) is not type(config):  # it took the text part: keep the whole
            config.save_pretrained(folder)  # model's config, as a checkpoint of it has
    except Exception as exc:  # the model's own code fails on its tiny config
        return Outcome(model_type, cls_name, "cannot run", _first_line(exc))
    return None


def load(model_type: str, folder: Path, tokenizer: Any = None) -> tuple[Outcome, Any]:
    """Load a built folder with HookedModel.from_pretrained: (outcome, model or None)."""
    from .. import HookedModel
    from .._errors import NoTokenizerWarning, UnsupportedModelError

    cls_name = causal_lm_types()[model_type]
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", NoTokenizerWarning)
            model = HookedModel.from_pretrained(str(folder), tokenizer=tokenizer)
    except UnsupportedModelError as exc:
        lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
        why = lines[0].split(": ", 1)[-1] if "derived" not in lines[0] else lines[2].lstrip("- ")
        return Outcome(model_type, cls_name, "not wrapped", why), None
    whole = model.spec.whole_blocks()
    if whole is not None:  # only the stream's points: the reason the template refused
        inside = [str(i) for i, x in enumerate(model.spec.layers or ()) if x.attends_inside]
        if inside:  # and the internals of an attention the blocks call off the stream (Zamba)
            calling = ", ".join(inside)
            whole = f"attention's internal points on the layers calling it ({calling}); {whole}"
        return Outcome(model_type, cls_name, "wrapped", whole, adapter=STREAM_ONLY), model
    if model.spec.streams is not None:  # the parts' points: no point on the streams
        return Outcome(model_type, cls_name, "wrapped", model.spec.streams, PARTS_ONLY), model
    kind = "derived" if model.spec.derived else "explicit"
    return Outcome(model_type, cls_name, "wrapped", adapter=kind), model


def survey(types: list[str] | None = None) -> list[Outcome]:
    """The outcome of every causal-LM type (or of `types`)."""
    found = []
    with tempfile.TemporaryDirectory() as tmp:
        for model_type in types or list(causal_lm_types()):
            folder = Path(tmp) / model_type
            failed = build(model_type, folder)
            found.append(failed or load(model_type, folder)[0])
    return found


def family_table(outcomes: list[Outcome]) -> str:
    """Markdown: counts, then one row per registry type."""
    wrapped = [o for o in outcomes if o.status == "wrapped" and o.adapter not in PARTIAL]
    stream = [o for o in outcomes if o.adapter == STREAM_ONLY]
    parts = [o for o in outcomes if o.adapter == PARTS_ONLY]
    runs = [o for o in outcomes if o.status != "cannot run"]
    derived = sum(o.adapter == "derived" for o in wrapped)
    rows = [
        f"{len(outcomes)} causal-LM types registered; {len(runs)} build and run as tiny models; "
        f"hooklens wraps {len(wrapped)} ({len(wrapped) - derived} by an explicit adapter, "
        f"{derived} derived), and {len(stream)} more with only the residual stream's points "
        "(their blocks kept whole; with the internal points of an attention they call off the "
        f"stream, where they do), and {len(parts)} with the points of their blocks' parts "
        "only (their residual stream is several parallel streams).",
        "",
        "| model type | HF class | hooklens | why not (more) |",
        "|---|---|---|---|",
    ]
    for o in outcomes:
        state = f"yes ({o.adapter})" if o.status == "wrapped" else o.status
        state = o.adapter if o.adapter in PARTIAL else state
        why = o.reason.replace("|", "\\|")
        rows.append(f"| {o.model_type} | `{o.class_name}` | {state} | {why} |")
    return "\n".join(rows)


if __name__ == "__main__":
    print(family_table(survey()))
