"""Tiny saved models for the view tests: random weights, a word-level tokenizer, the real loader.

The vocabulary holds strings a view must show as text, never as markup (``</script>``, an
``<img>`` whose ``onerror`` would run if it were parsed as HTML), and whitespace tokens (ids
only: the word-level tokenizer splits text on whitespace).
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import torch
import transformers

import hooklens as hl

WORDS = [
    "<bos>", "[UNK]", "The", "capital", "of", "Ireland", "is", "Dublin", "Paris", "France",
    "<img/src=x/onerror=alert(1)>", "</script>", " ", "\n",
]  # fmt: skip
IMG, SCRIPT, SPACE, NEWLINE = (WORDS.index(w) for w in WORDS[-4:])
TEXT = "The capital of Ireland is"


def word_tokenizer() -> Any:
    """A fast tokenizer over ``WORDS`` that splits text on whitespace and prepends ``<bos>``."""
    from tokenizers import Tokenizer
    from tokenizers.models import WordLevel
    from tokenizers.pre_tokenizers import WhitespaceSplit

    core = Tokenizer(WordLevel({w: i for i, w in enumerate(WORDS)}, unk_token="[UNK]"))
    core.pre_tokenizer = WhitespaceSplit()
    return transformers.PreTrainedTokenizerFast(
        tokenizer_object=core, bos_token="<bos>", unk_token="[UNK]"
    )


def tiny_gpt2(path: Path | str, n_layers: int = 2, n_heads: int = 4, seed: int = 0) -> Any:
    """A GPT-2 with random weights (seeded: the same call gives the same model in any process),
    saved with :func:`word_tokenizer` to ``path`` and loaded by path."""
    torch.manual_seed(seed)
    config = transformers.GPT2Config(
        n_layer=n_layers,
        n_head=n_heads,
        n_embd=8 * n_heads,
        n_positions=64,
        vocab_size=len(WORDS),
        bos_token_id=0,
        eos_token_id=0,
    )
    transformers.GPT2LMHeadModel(config).save_pretrained(path)
    word_tokenizer().save_pretrained(path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # transformers' own notices on save/load
        return hl.HookedModel.from_pretrained(str(path))
