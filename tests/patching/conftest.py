"""Tiny random models (4 layers) saved with save_pretrained and loaded through HookedModel."""

from __future__ import annotations

import os
import warnings

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from pathlib import Path
from typing import Any

import pytest
import torch

import hooklens as hl

VOCAB = 96
COMMON = {"vocab_size": VOCAB, "bos_token_id": 1, "eos_token_id": 2, "pad_token_id": 0}


def tiny_config(family: str) -> Any:
    import transformers as tf

    if family == "gpt2":
        return tf.GPT2Config(n_positions=64, n_embd=32, n_layer=4, n_head=4, **COMMON)
    if family == "gpt_neox":
        return tf.GPTNeoXConfig(
            hidden_size=32, num_hidden_layers=4, num_attention_heads=4, intermediate_size=64,
            rotary_pct=0.25, max_position_embeddings=64, **COMMON,
        )  # fmt: skip
    if family == "llama":
        return tf.LlamaConfig(
            hidden_size=32, intermediate_size=64, num_hidden_layers=4, num_attention_heads=4,
            num_key_value_heads=2, max_position_embeddings=64, **COMMON,
        )  # fmt: skip
    raise ValueError(family)


def load_tiny(family: str, folder: Path) -> hl.HookedModel:
    from transformers import AutoModelForCausalLM

    torch.manual_seed(0)
    hf = AutoModelForCausalLM.from_config(tiny_config(family))
    # Larger weights than the default init so patches move the logits visibly.
    with torch.no_grad():
        for parameter in hf.parameters():
            if parameter.ndim == 2:
                parameter.mul_(4.0)
    hf.save_pretrained(folder)
    with warnings.catch_warnings():
        # These models have no tokenizer (ids only); the engine's tests cover that warning.
        warnings.simplefilter("ignore", hl.NoTokenizerWarning)
        return hl.HookedModel.from_pretrained(str(folder))


@pytest.fixture(scope="session", params=["gpt2", "gpt_neox", "llama"])
def tiny_model(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Any:
    return load_tiny(request.param, tmp_path_factory.mktemp(request.param))


def prompt_pair(seq_len: int = 9, seed: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    """Clean and corrupted ids (1, seq_len) that differ at two positions."""
    generator = torch.Generator().manual_seed(seed)
    clean = torch.randint(3, VOCAB, (1, seq_len), generator=generator)
    corrupted = clean.clone()
    corrupted[0, 2] = (clean[0, 2] + 7) % (VOCAB - 3) + 3
    corrupted[0, 5] = (clean[0, 5] + 11) % (VOCAB - 3) + 3
    return clean, corrupted
