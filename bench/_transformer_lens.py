"""TransformerLens on the same weights, for the benchmarks' comparison rows (optional).

TransformerLens is a bench-only dependency: install it in a separate environment
(`pip install transformer-lens`, plus hooklens) and run the bench scripts from there.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def save_for_transformer_lens(hf_model: Any, folder: str | Path) -> None:
    """Save `hf_model` with a placeholder tokenizer: TransformerLens loads one from the folder
    (the benchmarks feed token ids, so its vocabulary does not matter)."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    hf_model.save_pretrained(folder)
    config_file = Path(folder) / "config.json"
    config = json.loads(config_file.read_text())
    if config["model_type"] == "gpt2":  # TransformerLens 3.x reads `n_ctx`, as hub configs have
        config_file.write_text(json.dumps({**config, "n_ctx": config["n_positions"]}, indent=2))
    backend = Tokenizer(models.WordLevel(vocab={"<unk>": 0}, unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    special = {name: "<unk>" for name in ("unk_token", "pad_token", "bos_token", "eos_token")}
    PreTrainedTokenizerFast(tokenizer_object=backend, **special).save_pretrained(folder)


def load_transformer_lens(folder: str | Path) -> Any:
    """A TransformerLens model of the checkpoint in `folder` (its own copy of the weights).

    TransformerLens 4.x: `TransformerBridge` over the Hugging Face model (HF numerics).
    TransformerLens 3.x: `HookedTransformer` with its `from_pretrained` defaults (see below).
    Raises ImportError when TransformerLens is not installed.
    """
    from importlib.metadata import version

    import transformer_lens  # noqa: F401  (ImportError: the caller skips the rows)
    from transformers import AutoModelForCausalLM

    hf_model = AutoModelForCausalLM.from_pretrained(folder).eval()
    if int(version("transformer-lens").split(".")[0]) < 4:
        return _hooked_transformer(str(folder), hf_model)
    from transformer_lens.model_bridge import TransformerBridge
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(folder)
    return TransformerBridge.boot_transformers(str(folder), hf_model=hf_model, tokenizer=tokenizer)


def _hooked_transformer(folder: str, hf_model: Any) -> Any:
    """`HookedTransformer.from_pretrained` with its defaults (fold_ln, center_writing_weights,
    center_unembed, fold_value_biases; float32), less its official-name lookup: its config and
    state-dict loaders accept a local folder, so nothing is fetched from the hub."""
    from transformer_lens import HookedTransformer
    from transformer_lens.loading_from_pretrained import (
        get_pretrained_model_config,
        get_pretrained_state_dict,
    )

    cfg = get_pretrained_model_config(folder, hf_cfg=hf_model.config.to_dict(), fold_ln=True)
    model = HookedTransformer(cfg, move_to_device=False)  # its tokenizer: the folder's
    model.load_and_process_state_dict(get_pretrained_state_dict(folder, cfg, hf_model))
    model.move_model_modules_to_device()
    return model
