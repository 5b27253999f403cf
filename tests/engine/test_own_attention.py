"""Families whose attention module computes attention itself, in the configuration variants the
registry's tiny models do not cover: Falcon's block layouts (each its own adapter, chosen by the
configuration). Each must reproduce the model with every point attached, pass the load-time
check, and take edits at resid_pre, z and pattern like raw torch hooks."""

from __future__ import annotations

import warnings

import pytest
import torch

import hooklens as hl
from hooklens._engine.verify import verify
from hooklens.architectures._registry import VOCAB, _sharpen, tiny_config

from .test_registry import _check_edits

FALCON = {
    "parallel_alibi": {"alibi": True},
    "sequential_rotary": {"parallel_attn": False},
    "sequential_alibi_mha": {"parallel_attn": False, "alibi": True, "multi_query": False},
    "new_architecture_two_norms": {"new_decoder_architecture": True, "num_kv_heads": 2},
    "new_architecture_one_norm": {
        "new_decoder_architecture": True,
        "num_kv_heads": 2,
        "num_ln_in_parallel_attn": 1,
    },
}


@pytest.mark.parametrize("variant", FALCON)
def test_falcon_variant(tmp_path, variant):
    from transformers import AutoModelForCausalLM

    config = tiny_config("falcon")
    for key, value in FALCON[variant].items():
        setattr(config, key, value)
    torch.manual_seed(0)
    hf = AutoModelForCausalLM.from_config(config).eval()
    _sharpen(hf)
    hf.save_pretrained(tmp_path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", hl.NoTokenizerWarning)
        model = hl.HookedModel.from_pretrained(str(tmp_path))
    verify(model)  # every claim of the adapter, against the model's own forward
    tokens = torch.randint(4, VOCAB, (2, 7), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        ref = model.hf_model(tokens).logits
        logits, cache = model.run_with_cache(tokens)
    assert (logits - ref).abs().max() <= 1e-4
    kv = config.num_kv_heads if config.new_decoder_architecture else 1
    kv = kv if config.multi_query or config.new_decoder_architecture else config.num_attention_heads
    assert cache["blocks.0.attn.hook_k"].shape[2] == model.cfg.n_kv_heads == kv
    _check_edits(model, tokens, ref)
