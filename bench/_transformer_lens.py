"""TransformerLens on the same weights, for the benchmarks' comparison rows (optional).

TransformerLens is a bench-only dependency: install it in a separate environment
(`pip install transformer-lens`, plus hooklens) and run the bench scripts from there.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any


def save_for_transformer_lens(hf_model: Any, folder: str | Path) -> None:
    """Save `hf_model` with a placeholder tokenizer: TransformerLens loads one from the folder
    (the benchmarks feed token ids, so its vocabulary does not matter)."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    hf_model.save_pretrained(folder)
    backend = Tokenizer(models.WordLevel(vocab={"<unk>": 0}, unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    special = {name: "<unk>" for name in ("unk_token", "pad_token", "bos_token", "eos_token")}
    PreTrainedTokenizerFast(tokenizer_object=backend, **special).save_pretrained(folder)


def load_transformer_lens(folder: str | Path) -> Any:
    """A TransformerLens model of the checkpoint in `folder` (its own copy of the weights).

    TransformerLens 4.x: `TransformerBridge` over the Hugging Face model (HF numerics).
    Raises ImportError when TransformerLens is not installed.
    """
    import transformer_lens  # noqa: F401  (ImportError: the caller skips the rows)
    from transformer_lens.model_bridge import TransformerBridge
    from transformers import AutoModelForCausalLM, AutoTokenizer

    hf_model = AutoModelForCausalLM.from_pretrained(folder).eval()
    tokenizer = AutoTokenizer.from_pretrained(folder)
    return TransformerBridge.boot_transformers(str(folder), hf_model=hf_model, tokenizer=tokenizer)
